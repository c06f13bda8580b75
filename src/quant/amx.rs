//! Intel AMX (Advanced Matrix Extensions, Sapphire Rapids and later) for the int8 and bf16 convs:
//! one `tdpbsud` multiplies a 16×64 int8 weight tile by a 64×16 u8 activation tile into 16×16
//! i32 sums (16 384 multiply-adds per instruction, 8× what `vpdpbusd` does per cycle on this
//! core); `tdpbf16ps` does the same for pairs of bf16 into f32 sums.
//!
//! Rust's AMX intrinsics are not stable, so the five instructions used are written in `asm!`.
//! Linux hands out the 8 KiB tile state only after the process asks (`arch_prctl`), so
//! [`available`] asks once; any failure leaves the VNNI kernel in charge. `KESTREL_AMX=0`
//! turns it off (A/B timing, and a way out should a kernel or hypervisor misbehave).

// Off x86_64 only the detection runs (it answers false): the tile code is compiled out.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use std::sync::OnceLock;

/// Output channels per kernel call: two 16-row weight tiles.
pub(crate) const COUT_GROUP: usize = 32;
/// Pixels per kernel call: two 16-column activation tiles.
pub(crate) const PIXELS: usize = 32;
/// K words (4 bytes each) per tile step: one 64-byte tile row.
pub(crate) const K_STEP: usize = 16;

/// Whether the AMX int8 kernel runs here: CPU support (cpuid), the kernel's grant of the tile
/// state to this process, and `KESTREL_AMX` not `0`. Asked once.
pub(crate) fn available() -> bool {
    features().0
}

/// Whether the AMX bf16 kernel runs here (AMX-BF16 as well, same grant and switch).
pub(crate) fn bf16_available() -> bool {
    features().1
}

/// (int8, bf16), asked once.
fn features() -> (bool, bool) {
    static FEATURES: OnceLock<(bool, bool)> = OnceLock::new();
    *FEATURES.get_or_init(|| {
        if std::env::var("KESTREL_AMX").as_deref() == Ok("0") {
            return (false, false);
        }
        detect()
    })
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> (bool, bool) {
    use std::arch::x86_64::__cpuid_count;
    const AMX_BF16: u32 = 1 << 22;
    const AMX_TILE: u32 = 1 << 24;
    const AMX_INT8: u32 = 1 << 25;
    const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: cpuid is present on every x86_64 CPU; leaf 0 reports the highest leaf, checked
    // before leaf 7 is read.
    #[allow(unused_unsafe)]
    let (max_leaf, edx7) = unsafe {
        let max = __cpuid_count(0, 0).eax;
        (max, if max >= 7 { __cpuid_count(7, 0).edx } else { 0 })
    };
    if max_leaf < 7 || edx7 & AMX_TILE == 0 {
        return (false, false);
    }
    let mut granted: u64 = 0;
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) only widens the set of register state
    // this process may use; ARCH_GET_XCOMP_PERM writes one u64 through the pointer given, which
    // points at `granted`, alive for the call.
    let ok = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
            && libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_GET_XCOMP_PERM,
                &mut granted as *mut u64,
            ) == 0
    };
    let tiles = ok && granted & (1 << XFEATURE_XTILEDATA) != 0;
    (tiles && edx7 & AMX_INT8 != 0, tiles && edx7 & AMX_BF16 != 0)
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> (bool, bool) {
    (false, false)
}

/// `ldtilecfg`'s 64-byte operand.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

impl TileConfig {
    /// tmm0–3: i32 sums (16 rows × 16 lanes); tmm4–5: weights (16 channels × 64 bytes of K);
    /// tmm6–7: activations (16 K words × 16 pixels × 4 bytes).
    fn new() -> TileConfig {
        let mut c = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        for t in 0..8 {
            c.colsb[t] = 64;
            c.rows[t] = 16;
        }
        c
    }

    /// # Safety
    /// The CPU must have AMX-TILE and the OS must have granted the tile state.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load(&self) {
        // SAFETY: per the function's contract; `self` is a 64-byte aligned, valid config.
        unsafe {
            std::arch::asm!("ldtilecfg [{}]", in(reg) self as *const TileConfig, options(nostack))
        };
    }
}

/// A stride-1 or -2 conv on AMX without im2col ("implicit GEMM"): the input is quantized into
/// zero-padded planes of channel words (four int8 or two bf16 channels each; see
/// [`DirectGeom`]), where the 16 pixels one tile row needs for a kernel tap are 64 contiguous
/// bytes, so every tap is read straight from the planes. Outputs are computed over the planes'
/// width (the extra columns per row are discarded), which makes a run of pixels contiguous
/// across rows.
pub(crate) struct DirectWeights {
    op: TileOp,
    cout: usize,
    size: usize,
    /// 4-channel words per K step (≤ 16) and steps per tap; quads = chunk_q · chunks.
    chunk_q: usize,
    chunks: usize,
    /// `[cout / 16 rounded up to even][tap][chunk][16 channels][chunk_q words]`.
    w: Vec<i32>,
}

/// What one tile multiply does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TileOp {
    /// `tdpbsud`: words of four s8 weights × four u8 activations, i32 sums.
    Int8,
    /// `tdpbf16ps`: words of two bf16 weights × two bf16 activations, f32 sums.
    Bf16,
}

/// Geometry of one direct call over padded planes.
///
/// Stride 1: one plane per channel word, `hp × wp`; output pixel (y, x) at tap (ky, kx) reads
/// plane position (y + ky, x + kx), so over the padded width a run of outputs reads a run of
/// words. Stride 2: each channel word's padded map is split in four phase planes (even/odd rows
/// × even/odd columns, `⌈hp/2⌉ × ⌈wp/2⌉` each); output (y, x) at tap (ky, kx) reads phase
/// (ky mod 2, kx mod 2) at (y + ⌊ky/2⌋, x + ⌊kx/2⌋): again a run of words per run of outputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirectGeom {
    /// Padded map height and width.
    pub hp: usize,
    pub wp: usize,
    /// Output height.
    pub ho: usize,
    /// 1 or 2.
    pub stride: usize,
}

impl DirectGeom {
    /// Width of the planes, which is also the padded output width computed.
    pub fn out_w(&self) -> usize {
        self.wp.div_ceil(self.stride)
    }

    /// Words of one (phase) plane.
    pub fn plane(&self) -> usize {
        self.hp.div_ceil(self.stride) * self.out_w()
    }

    /// Words between one channel word's planes and the next's.
    pub fn word_stride(&self) -> usize {
        self.plane() * self.stride * self.stride
    }

    /// Where padded-map position (r, c) of channel word 0 lives; also the offset of kernel tap
    /// (r, c) from an output pixel's index (output (y, x) reads (s·y + r, s·x + c)).
    pub fn position(&self, r: usize, c: usize) -> usize {
        let s = self.stride;
        ((r % s) * s + c % s) * self.plane() + (r / s) * self.out_w() + c / s
    }

    /// Padded-width pixels computed: `ho · out_w`, in blocks of 32.
    pub fn blocks(&self) -> usize {
        (self.ho * self.out_w()).div_ceil(PIXELS)
    }
}

impl DirectWeights {
    /// From `[cout][size² · cq]` words (K order ky, kx, channel word) of four int8 or two bf16
    /// weights each (`op`).
    pub fn new(op: TileOp, w: &[i32], cout: usize, cq: usize, size: usize) -> DirectWeights {
        let chunks = cq.div_ceil(K_STEP).max(1);
        let chunk_q = cq.div_ceil(chunks);
        let taps = size * size;
        let groups = cout.div_ceil(COUT_GROUP) * 2;
        let kq = taps * cq;
        let mut packed = vec![0i32; groups * taps * chunks * 16 * chunk_q];
        for o in 0..cout {
            let (g, r) = (o / 16, o % 16);
            for t in 0..taps {
                for q in 0..cq {
                    let (j, qq) = (q / chunk_q, q % chunk_q);
                    let at = ((((g * taps + t) * chunks + j) * 16 + r) * chunk_q) + qq;
                    packed[at] = w[o * kq + t * cq + q];
                }
            }
        }
        DirectWeights {
            op,
            cout,
            size,
            chunk_q,
            chunks,
            w: packed,
        }
    }

    /// Channel quads the padded planes must hold (weights past the real channels are zero).
    pub fn quads(&self) -> usize {
        self.chunk_q * self.chunks
    }

    /// Words the planes buffer must hold: the planes, then what the discarded outputs of the
    /// last block read past the last plane.
    pub fn input_words(&self, g: &DirectGeom) -> usize {
        self.quads() * g.word_stride() + 2 * PIXELS + self.size * (g.out_w() + 1)
    }

    /// Integer sums of blocks `b0..b1` (32 padded-width pixels each) for every output channel,
    /// handed to `block(b, o, rows, acc)` per 32 channels: `acc[r][i]` is channel `o + r` at
    /// padded pixel `32·b + i`. Returns false (and does nothing) when `x` is too short.
    #[cfg(target_arch = "x86_64")]
    pub fn run(
        &self,
        x: &[u32],
        g: &DirectGeom,
        (b0, b1): (usize, usize),
        mut block: impl FnMut(usize, usize, usize, &[[i32; PIXELS]; COUT_GROUP]),
    ) -> bool {
        if x.len() < self.input_words(g) || b1 > g.blocks() || self.cout == 0 {
            return false;
        }
        let mut config = TileConfig::new();
        for t in 4..6 {
            config.colsb[t] = (self.chunk_q * 4) as u16;
        }
        for t in 6..8 {
            config.rows[t] = self.chunk_q as u8;
        }
        let stride = g.word_stride();
        let taps = self.size * self.size;
        let group_len = taps * self.chunks * 16 * self.chunk_q;
        let mut acc = [[0i32; PIXELS]; COUT_GROUP];
        // SAFETY: AMX was found and granted (`available`, checked before DirectWeights is
        // built); the config is a valid palette-1 layout: 16-row tiles, A tiles of chunk_q·4
        // ≤ 64 bytes per row, B tiles of chunk_q ≤ 16 rows of 64 bytes.
        unsafe { config.load() };
        for b in b0..b1 {
            let p0 = b * PIXELS;
            let mut o = 0;
            while o < self.cout {
                let w = &self.w[(o / 16) * group_len..(o / 16 + 2) * group_len];
                let mut steps = 0;
                // SAFETY: tiles configured above.
                unsafe { zero_sums() };
                for ky in 0..self.size {
                    for kx in 0..self.size {
                        let shift = p0 + g.position(ky, kx);
                        for j in 0..self.chunks {
                            let a = steps * 16 * self.chunk_q;
                            let xb = j * self.chunk_q * stride + shift;
                            // SAFETY: weight rows a.. + 16·chunk_q (and the second group at
                            // + group_len) lie in `w`; activation rows xb + r·word_stride for
                            // r < chunk_q, 32 words each, end before
                            // quads·word_stride + 64 ≤ input_words ≤ x.len() (checked above):
                            // 32·blocks ≤ ho·out_w + 31, and the last word's planes end at
                            // quads·word_stride, past every tap's reach of valid outputs.
                            unsafe {
                                let (a0, a1) = (w.as_ptr().add(a), w.as_ptr().add(group_len + a));
                                let xp = x.as_ptr().add(xb);
                                match self.op {
                                    TileOp::Int8 => step(a0, a1, self.chunk_q * 4, xp, stride * 4),
                                    TileOp::Bf16 => {
                                        step_bf16(a0, a1, self.chunk_q * 4, xp, stride * 4)
                                    }
                                }
                            };
                            steps += 1;
                        }
                    }
                }
                // SAFETY: `acc` holds 32 rows of 32 i32.
                unsafe { store(acc.as_mut_ptr()) };
                block(b, o, COUT_GROUP.min(self.cout - o), &acc);
                o += COUT_GROUP;
            }
        }
        // SAFETY: no tile is used past this point on this thread.
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
        true
    }

    /// The whole conv into `dst` (`[cout][ho·wo]`, every output written): padded-width blocks
    /// split over the rayon pool, and for each run of valid outputs of one channel in a block,
    /// `emit(channel, sums, out)` turns the tile's sums (i32, or f32 bits for bf16) into the
    /// outputs. Returns false (nothing written) when `x` is too short.
    #[cfg(target_arch = "x86_64")]
    pub fn conv_into(
        &self,
        x: &[u32],
        g: &DirectGeom,
        wo: usize,
        dst: &mut [f32],
        emit: impl Fn(usize, &[i32], &mut [f32]) + Sync,
    ) -> bool {
        use rayon::prelude::*;
        let (ho, wp) = (g.ho, g.out_w());
        let n = ho * wo;
        if dst.len() < self.cout * n || x.len() < self.input_words(g) {
            return false;
        }
        // Valid outputs before padded pixel P: where a block range's segment of a plane starts.
        let first_out = |p: usize| ((p / wp) * wo + (p % wp).min(wo)).min(n);
        let blocks = g.blocks();
        let parts = rayon::current_num_threads().clamp(1, blocks.max(1));
        let bounds: Vec<usize> = (0..=parts).map(|t| t * blocks / parts).collect();
        let mut segs: Vec<Vec<&mut [f32]>> = (0..parts).map(|_| Vec::new()).collect();
        for row in dst[..self.cout * n].chunks_mut(n) {
            let mut rest = row;
            for (t, seg) in segs.iter_mut().enumerate() {
                let len = first_out(bounds[t + 1] * PIXELS) - first_out(bounds[t] * PIXELS);
                let (mine, tail) = rest.split_at_mut(len);
                seg.push(mine);
                rest = tail;
            }
        }
        let run = |(t, mut segs): (usize, Vec<&mut [f32]>)| -> bool {
            let start = first_out(bounds[t] * PIXELS);
            // (first pixel in the block, count, first output in the segment) of each run of
            // valid outputs in the current block.
            let mut runs = [(0usize, 0usize, 0usize); PIXELS];
            let mut nruns = 0;
            self.run(x, g, (bounds[t], bounds[t + 1]), |b, o, rows, acc| {
                if o == 0 {
                    nruns = 0;
                    let mut i = 0;
                    while i < PIXELS {
                        let p = b * PIXELS + i;
                        let (y, col) = (p / wp, p % wp);
                        let len = (PIXELS - i).min(wp - col);
                        if y < ho && col < wo {
                            runs[nruns] = (i, len.min(wo - col), y * wo + col - start);
                            nruns += 1;
                        }
                        i += len;
                    }
                }
                for (r, acc_r) in acc.iter().enumerate().take(rows) {
                    let seg = &mut segs[o + r];
                    for &(i, len, at) in &runs[..nruns] {
                        emit(o + r, &acc_r[i..i + len], &mut seg[at..at + len]);
                    }
                }
            })
        };
        if parts == 1 {
            return segs.into_iter().enumerate().all(run);
        }
        segs.into_par_iter()
            .enumerate()
            .map(run)
            .collect::<Vec<_>>()
            .iter()
            .all(|&ok| ok)
    }
}

/// Fills the planes of `words` channel words (of `x`, laid out as `g` says): every word
/// written, `zero` for the padding (`pad` around an `h × w` map) and for the words past
/// `real`; `row(word, y, out)` writes input row `y` of channel word `word` (w words).
pub(crate) fn fill_planes(
    g: &DirectGeom,
    (h, w, pad): (usize, usize, usize),
    real: usize,
    zero: u32,
    x: &mut [u32],
    row: impl Fn(usize, usize, &mut [u32]) + Sync,
) {
    use rayon::prelude::*;
    let ws = g.word_stride();
    let (used, rest) = x.split_at_mut(real * ws);
    rest.fill(zero);
    used.par_chunks_mut(ws).enumerate().for_each_init(
        || vec![0u32; w],
        |tmp, (q, out)| {
            out.fill(zero);
            for y in 0..h {
                let r = y + pad;
                if g.stride == 1 {
                    let at = g.position(r, pad);
                    row(q, y, &mut out[at..at + w]);
                    continue;
                }
                // Even and odd columns of the padded row go to two phase planes.
                row(q, y, tmp);
                let (even, odd) = (g.position(r, 0), g.position(r, 1));
                for (x, &v) in tmp.iter().enumerate() {
                    let c = x + pad;
                    out[if c % 2 == 0 { even } else { odd } + c / 2] = v;
                }
            }
        },
    );
}

/// Defines one K step of the 2×2 tile block with tile multiply `$op`: weights `a0`, `a1` (16
/// rows of `a_stride` bytes), activations at `x` and `x + 16` words (rows `x_stride` bytes
/// apart), summed into tmm0–3.
macro_rules! tile_step {
    ($(#[$doc:meta])* $name:ident, $op:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Tiles configured; every row the configuration makes the loads read is readable; the
        /// CPU has the instruction's AMX extension.
        #[cfg(target_arch = "x86_64")]
        #[inline(always)]
        unsafe fn $name(
            a0: *const i32,
            a1: *const i32,
            a_stride: usize,
            x: *const u32,
            x_stride: usize,
        ) {
            // SAFETY: per the function's contract.
            unsafe {
                std::arch::asm!(
                    "tileloadd tmm4, [{a0} + {as_}*1]",
                    "tileloadd tmm5, [{a1} + {as_}*1]",
                    "tileloadd tmm6, [{b0} + {xs}*1]",
                    "tileloadd tmm7, [{b1} + {xs}*1]",
                    concat!($op, " tmm0, tmm4, tmm6"),
                    concat!($op, " tmm1, tmm4, tmm7"),
                    concat!($op, " tmm2, tmm5, tmm6"),
                    concat!($op, " tmm3, tmm5, tmm7"),
                    a0 = in(reg) a0,
                    a1 = in(reg) a1,
                    as_ = in(reg) a_stride,
                    b0 = in(reg) x,
                    b1 = in(reg) x.add(16),
                    xs = in(reg) x_stride,
                    options(nostack, readonly)
                );
            }
        }
    };
}

tile_step!(
    /// int8: s8 weights × u8 activations, i32 sums.
    step,
    "tdpbsud"
);
tile_step!(
    /// bf16 pairs, f32 sums.
    step_bf16,
    "tdpbf16ps"
);

/// Zeroes the sums tmm0–3.
///
/// # Safety
/// Tiles configured.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn zero_sums() {
    // SAFETY: tilezero touches tile registers only.
    unsafe {
        std::arch::asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        )
    };
}

/// Stores tmm0–3 as `c[32][32]` (channels × pixels).
///
/// # Safety
/// Tiles configured with 16×64-byte sums; `c` writable for 32 rows of 32 i32.
#[cfg(target_arch = "x86_64")]
unsafe fn store(c: *mut [i32; PIXELS]) {
    let c = c as *mut i32;
    // SAFETY: per the function's contract: rows r·32 (+16) for r < 32.
    unsafe {
        std::arch::asm!(
            "tilestored [{c0} + {cs}*1], tmm0",
            "tilestored [{c1} + {cs}*1], tmm1",
            "tilestored [{c2} + {cs}*1], tmm2",
            "tilestored [{c3} + {cs}*1], tmm3",
            c0 = in(reg) c,
            c1 = in(reg) c.add(16),
            c2 = in(reg) c.add(16 * PIXELS),
            c3 = in(reg) c.add(16 * PIXELS + 16),
            cs = in(reg) PIXELS * 4,
            options(nostack)
        );
    }
}
