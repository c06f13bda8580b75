//! Stride-1 and -2 convolutions without im2col ("implicit GEMM") for the int8 and bf16 paths:
//! the input is written once into zero-padded planes of channel words (four int8 or two bf16
//! channels per 32-bit word; see [`DirectGeom`]), where the 32 pixels a block of outputs needs
//! for one kernel tap are 32 contiguous words, so every tap is read straight from the planes.
//!
//! Two engines compute the same sums from the same planes and weights: Intel AMX tiles
//! (`super::amx`, Sapphire Rapids and later) and AVX-512 registers (`super::avx512`: VNNI
//! `vpdpbusd` for int8, AVX512-BF16 `vdpbf16ps` for bf16; Zen 4/5, Ice Lake, Cooper Lake…).
//! Integer sums are exact, so the int8 engines agree bit for bit.

// Off x86_64 neither engine exists: `DirectWeights::new` answers None there.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

/// Output channels per block call: two 16-row weight groups.
pub(crate) const COUT_GROUP: usize = 32;
/// Pixels per block call: two 16-lane vectors (or 16-column tiles).
pub(crate) const PIXELS: usize = 32;
/// K words (4 bytes each) per step: one 64-byte tile row.
pub(crate) const K_STEP: usize = 16;

/// Which hardware computes the sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    /// AMX tiles: a 2×2 block of 16×16 sums per K step.
    Amx,
    /// AVX-512 registers: 8 channels × 32 pixels per pass, one dot-product instruction per
    /// channel and 16 pixels.
    Avx512,
}

impl Engine {
    /// The fastest engine this CPU runs `op` on, if any.
    pub fn for_op(op: TileOp) -> Option<Engine> {
        let amx = match op {
            TileOp::Int8 => super::amx::available(),
            TileOp::Bf16 => super::amx::bf16_available(),
            TileOp::F32 => false,
        };
        if amx {
            Some(Engine::Amx)
        } else if super::avx512::available(op) {
            Some(Engine::Avx512)
        } else {
            None
        }
    }
}

/// A conv's weights for one engine. Outputs are computed over the planes' width (the extra
/// columns per row are discarded), which makes a run of pixels contiguous across rows.
pub(crate) struct DirectWeights {
    pub(super) op: TileOp,
    pub(super) engine: Engine,
    pub(super) cout: usize,
    pub(super) size: usize,
    /// Channel words per K step (≤ 16) and steps per tap; words = chunk_q · chunks.
    pub(super) chunk_q: usize,
    pub(super) chunks: usize,
    /// `[cout / 16 rounded up to even][tap][chunk][16 channels][chunk_q words]`.
    pub(super) w: Vec<i32>,
}

/// Valid outputs of one block: lanes `lane..lane + len` of the block's sums are the outputs
/// `at..at + len` of the caller's segment of a channel.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Run {
    pub lane: usize,
    pub len: usize,
    pub at: usize,
    /// The same outputs' place in the second output's segment (see `conv_regions`).
    pub at2: usize,
}

/// What one tile multiply does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TileOp {
    /// `tdpbsud`: words of four s8 weights × four u8 activations, i32 sums.
    Int8,
    /// `tdpbf16ps`: words of two bf16 weights × two bf16 activations, f32 sums.
    Bf16,
    /// One f32 weight × one f32 activation per word, f32 sums (AVX-512 `vfmadd231ps` only: the
    /// tiles have no f32 multiply).
    F32,
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
    /// weights each (`op`); None where this CPU has no engine for `op`.
    pub fn new(op: TileOp, w: &[i32], cout: usize, cq: usize, size: usize) -> Option<Self> {
        let engine = Engine::for_op(op)?;
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
        Some(DirectWeights {
            op,
            engine,
            cout,
            size,
            chunk_q,
            chunks,
            w: packed,
        })
    }

    /// Weight words of one 16-channel group: `[tap][chunk][16 channels][chunk_q]`.
    pub(super) fn group_len(&self) -> usize {
        self.size * self.size * self.chunks * 16 * self.chunk_q
    }

    /// Channel words the padded planes must hold (weights past the real channels are zero).
    pub fn words(&self) -> usize {
        self.chunk_q * self.chunks
    }

    /// Words the planes buffer must hold: the planes, then what the discarded outputs of the
    /// last block read past the last plane.
    pub fn input_words(&self, g: &DirectGeom) -> usize {
        self.words() * g.word_stride() + 2 * PIXELS + self.size * (g.out_w() + 1)
    }

    /// Integer sums of blocks `b0..b1` (32 padded-width pixels each) for the output channels of
    /// 32-channel groups `groups.0..groups.1` (every group on the AMX engine), handed to
    /// `block(b, o, rows, acc)` per 32 channels (every (block, group) once, in an order
    /// of the engine's choosing): `acc[r][i]` is channel `o + r` at
    /// padded pixel `32·b + i` (i32, or f32 bits for bf16). Returns false (and does nothing)
    /// when `x` is too short.
    #[cfg(target_arch = "x86_64")]
    pub fn run(
        &self,
        x: &[u32],
        g: &DirectGeom,
        blocks: (usize, usize),
        groups: (usize, usize),
        block: impl FnMut(usize, usize, usize, &[[i32; PIXELS]; COUT_GROUP]),
    ) -> bool {
        let all = self.cout.div_ceil(COUT_GROUP);
        if x.len() < self.input_words(g) || blocks.1 > g.blocks() || self.cout == 0 {
            return false;
        }
        // The tiles run every group; only the registers engine takes a share of them.
        if groups.1 > all || (self.engine == Engine::Amx && groups != (0, all)) {
            return false;
        }
        // Both engines read, for block b, tap (ky, kx) and channel word q, the 32 words at
        // 32·b + position(ky, kx) + q·word_stride: they end before
        // words·word_stride + 64 ≤ input_words ≤ x.len() (checked above), since
        // 32·blocks ≤ ho·out_w + 31 and the last word's planes end at words·word_stride, past
        // every tap's reach of valid outputs.
        match self.engine {
            Engine::Amx => super::amx::run_tiles(self, x, g, blocks, block),
            Engine::Avx512 => super::avx512::run_regs(self, x, g, blocks, groups, block),
        }
        true
    }

    /// The whole conv into `dst` (`[cout][ho·wo]`, every output written): padded-width blocks
    /// split over the rayon pool, and for each 32-channel group of a block, `emit(block, segs)`
    /// turns the block's sums (i32, or f32 bits for bf16) into the outputs: for channel
    /// `block.o + r`, each [`Run`] of valid outputs goes to
    /// `segs[block.o + r][run.at..run.at + run.len]` from `acc[r][run.lane..run.lane + run.len]`.
    /// Returns false (nothing written) when `x` is too short.
    #[cfg(target_arch = "x86_64")]
    pub fn conv_into(
        &self,
        x: &[u32],
        g: &DirectGeom,
        wo: usize,
        dst: &mut [f32],
        banks: &mut SegBanks,
        emit: impl Fn(&Block, &mut [&mut [f32]]) + Sync,
    ) -> bool {
        let n = g.ho * wo;
        if dst.len() < self.cout * n {
            return false;
        }
        let rows = Regions::new(&mut dst[..self.cout * n], Layout::map(n, wo));
        self.conv_regions(
            x,
            g,
            wo,
            (rows, Regions::<u32>::none()),
            banks,
            |b, segs, _| {
                emit(b, segs);
                0.0
            },
        )
        .is_some()
    }

    /// The whole conv, its outputs going to up to two destinations, each split in regions of
    /// its layout's `len` values (one per output channel, or per channel quad of the next conv's
    /// planes): padded-width blocks split over the rayon pool; for each 32-channel group of a
    /// block, `emit(block, first, second)` writes the block's valid outputs run by run into
    /// this task's segment of every region of each destination (`run.at` and `run.at2` are
    /// relative to the segments), and answers a value whose maximum over the conv is returned.
    /// None (nothing written) when `x` is too short.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn conv_regions<A: Send, B: Send>(
        &self,
        x: &[u32],
        g: &DirectGeom,
        wo: usize,
        (first, second): (Regions<A>, Regions<B>),
        banks: &mut SegBanks,
        emit: impl Fn(&Block, &mut [&mut [A]], &mut [&mut [B]]) -> f32 + Sync,
    ) -> Option<f32> {
        use rayon::prelude::*;
        let (ho, wp) = (g.ho, g.out_w());
        if x.len() < self.input_words(g) || wo > wp {
            return None;
        }
        let (blocks, groups) = (g.blocks(), self.cout.div_ceil(COUT_GROUP));
        let threads = rayon::current_num_threads().clamp(1, MAX_PARTS);
        // Few blocks (a small map: 13² is 7 of them) split unevenly over the threads; there
        // the tasks take channel groups instead, each all the blocks (registers engine only).
        let by_channels = self.engine == Engine::Avx512
            && threads > 1
            && blocks < 4 * threads
            && groups >= 2 * threads;
        let parts = match by_channels {
            true => threads,
            false => threads.min(blocks.max(1)),
        };
        let mut bounds = [0usize; MAX_PARTS + 1];
        for (t, b) in bounds.iter_mut().enumerate().take(parts + 1) {
            *b = t * if by_channels { groups } else { blocks } / parts;
        }
        // Task t's blocks and 32-channel groups.
        let work = |t: usize| match by_channels {
            true => ((0, blocks), (bounds[t], bounds[t + 1])),
            false => ((bounds[t], bounds[t + 1]), (0, groups)),
        };
        // Where each task's segment starts in a region: at the first valid output at or after
        // its first padded pixel (0 when split by channels: a task owns whole regions).
        let starts = |layout: &Layout| {
            let mut at = [0usize; MAX_PARTS + 1];
            for t in (1..=parts).filter(|_| !by_channels) {
                let p = bounds[t] * PIXELS;
                let (mut y, mut col) = (p / wp, p % wp);
                if col >= wo {
                    (y, col) = (y + 1, 0);
                }
                at[t] = if t == parts || y >= ho {
                    layout.len
                } else {
                    layout.index(y, col)
                };
            }
            at
        };
        let (starts_a, starts_b) = (starts(&first.layout), starts(&second.layout));
        // Each task's segments, in vectors kept from call to call (no allocation per frame in
        // steady state).
        let (la, lb) = (first.layout, second.layout);
        let (mut segs_a, mut segs_b) = match by_channels {
            false => (
                first.split(&starts_a[..=parts], banks.take(parts, 0)),
                second.split(&starts_b[..=parts], banks.take(parts, 1)),
            ),
            true => (
                first.split_by_groups(&bounds[..=parts], banks.take(parts, 0)),
                second.split_by_groups(&bounds[..=parts], banks.take(parts, 1)),
            ),
        };
        let run = |(t, (sa, sb)): (usize, (&mut Segments<A>, &mut Segments<B>))| {
            let (base_a, base_b) = (starts_a[t], starts_b[t]);
            // The runs of valid outputs in the current block.
            let mut runs = [Run::default(); PIXELS];
            let (mut nruns, mut seen, mut last) = (0, 0f32, usize::MAX);
            let (blocks, groups) = work(t);
            let ran = self.run(x, g, blocks, groups, |b, o, rows, acc| {
                if b != last {
                    last = b;
                    nruns = 0;
                    let mut i = 0;
                    while i < PIXELS {
                        let p = b * PIXELS + i;
                        let (y, col) = (p / wp, p % wp);
                        let len = (PIXELS - i).min(wp - col);
                        if y < ho && col < wo {
                            runs[nruns] = Run {
                                lane: i,
                                len: len.min(wo - col),
                                at: la.index(y, col).wrapping_sub(base_a),
                                at2: lb.index(y, col).wrapping_sub(base_b),
                            };
                            nruns += 1;
                        }
                        i += len;
                    }
                }
                let block = Block {
                    o,
                    rows,
                    acc,
                    runs: &runs[..nruns],
                };
                seen = seen.max(emit(&block, sa, sb));
            });
            ran.then_some(seen)
        };
        let both = |a: Option<f32>, b: Option<f32>| a.zip(b).map(|(a, b)| a.max(b));
        let seen = if parts == 1 {
            (segs_a.iter_mut().zip(segs_b.iter_mut()))
                .enumerate()
                .map(run)
                .fold(Some(0.0), both)
        } else {
            (segs_a.par_iter_mut().zip(segs_b.par_iter_mut()))
                .enumerate()
                .map(run)
                .reduce(|| Some(0.0), both)
        };
        banks.give(segs_a, 0);
        banks.give(segs_b, 1);
        seen
    }
}

/// One 32-channel group of a block handed to `conv_regions`'s emit: channels `o..o + rows`,
/// `acc[r]` = channel o + r's sums, and the block's runs of valid outputs.
pub(crate) struct Block<'a> {
    pub o: usize,
    pub rows: usize,
    pub acc: &'a [[i32; PIXELS]; COUT_GROUP],
    pub runs: &'a [Run],
}

/// One destination of a conv: regions of `layout.len` values back to back (none when empty).
pub(crate) struct Regions<'a, T> {
    pub dst: &'a mut [T],
    pub layout: Layout,
    /// Output channels per region: 1 (channel maps) or 4 (channel quads).
    pub channels: usize,
}

impl<'a, T> Regions<'a, T> {
    /// One region per output channel.
    pub fn new(dst: &'a mut [T], layout: Layout) -> Self {
        Regions {
            dst,
            layout,
            channels: 1,
        }
    }

    /// One region per quad of output channels.
    pub fn quads(dst: &'a mut [T], layout: Layout) -> Self {
        Regions {
            dst,
            layout,
            channels: 4,
        }
    }

    /// No destination.
    pub fn none() -> Self {
        Regions::new(&mut [], Layout::map(0, 0))
    }

    /// Every region whole to the task whose 32-channel groups (`bounds[t]..bounds[t + 1]`)
    /// hold its channels, an empty segment to the others, into `segs` (one empty vector per
    /// task).
    fn split_by_groups(
        self,
        bounds: &[usize],
        mut segs: Vec<Segments<'a, T>>,
    ) -> Vec<Segments<'a, T>> {
        if self.layout.len > 0 {
            for (r, region) in self.dst.chunks_exact_mut(self.layout.len).enumerate() {
                let group = r * self.channels / COUT_GROUP;
                let owner = bounds[1..].iter().position(|&end| group < end);
                let mut region = Some(region);
                for (t, seg) in segs.iter_mut().enumerate() {
                    match (Some(t) == owner).then(|| region.take()).flatten() {
                        Some(whole) => seg.push(whole),
                        None => seg.push(&mut []),
                    }
                }
            }
        }
        segs
    }

    /// Every region cut at `starts` (task t: `starts[t]..starts[t + 1]`) into `segs`, one
    /// (empty) vector of segments per task.
    fn split(self, starts: &[usize], mut segs: Vec<Segments<'a, T>>) -> Vec<Segments<'a, T>> {
        if self.layout.len > 0 {
            for region in self.dst.chunks_exact_mut(self.layout.len) {
                let mut rest = region;
                for (t, seg) in segs.iter_mut().enumerate() {
                    let (mine, tail) = rest.split_at_mut(starts[t + 1] - starts[t]);
                    seg.push(mine);
                    rest = tail;
                }
            }
        }
        segs
    }
}

/// One task's segments of every region of one destination.
type Segments<'a, T> = Vec<&'a mut [T]>;

/// Most tasks one direct conv is split in (more threads than this share them).
const MAX_PARTS: usize = 64;

/// Emptied segment vectors of the last direct conv (one bank per destination), kept for the
/// next one: with them a conv allocates nothing once the vectors have grown. The planned
/// forward keeps one per input size; other callers keep their own (a thread-local one for the
/// int8 conv outside the planned forward).
#[derive(Default)]
pub(crate) struct SegBanks([Vec<Segments<'static, u8>>; 2]);

impl SegBanks {
    /// `parts` empty vectors for a conv's segments, reusing the kept allocations.
    fn take<'a, T>(&mut self, parts: usize, bank: usize) -> Vec<Segments<'a, T>> {
        let mut kept = std::mem::take(&mut self.0[bank]);
        kept.resize_with(parts.max(kept.len()), Vec::new);
        kept.truncate(parts);
        // Empty vectors of one fat-pointer type to another: `collect` reuses each allocation
        // in place (same size and alignment), so nothing is allocated.
        kept.into_iter().map(relabel).collect()
    }

    /// Keeps a conv's segment vectors (emptied) for the next conv.
    fn give<T>(&mut self, segs: Vec<Segments<'_, T>>, bank: usize) {
        self.0[bank] = segs.into_iter().map(relabel).collect();
    }
}

/// An emptied vector of slices as a vector of slices of another type and lifetime, on the same
/// allocation.
fn relabel<'b, T, U>(mut v: Vec<&mut [T]>) -> Vec<&'b mut [U]> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

/// Where a conv's valid output (y, x) lies in its region: at `(y + oy) · row + x + ox` of a
/// region of `len` values (an f32 channel map: row = wo, no offsets; a channel quad's padded
/// plane of the next conv: row = its padded width, offsets = its padding).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub len: usize,
    pub row: usize,
    pub oy: usize,
    pub ox: usize,
}

impl Layout {
    /// An f32 channel map of `n` outputs, `wo` per row.
    pub fn map(n: usize, wo: usize) -> Layout {
        Layout {
            len: n,
            row: wo,
            oy: 0,
            ox: 0,
        }
    }

    #[inline(always)]
    pub fn index(&self, y: usize, x: usize) -> usize {
        (y + self.oy) * self.row + x + self.ox
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
    used.par_chunks_mut(ws).enumerate().for_each(|(q, out)| {
        if g.stride == 1 {
            // Only the padding is zeroed: the words around and between the rows written.
            let mut next = 0;
            for y in 0..h {
                let at = g.position(y + pad, pad);
                out[next..at].fill(zero);
                row(q, y, &mut out[at..at + w]);
                next = at + w;
            }
            out[next..].fill(zero);
            return;
        }
        ROW.with_borrow_mut(|tmp| {
            // At least 32 KB on the first growth: any pool thread may meet the widest row late.
            if tmp.capacity() < w {
                tmp.reserve_exact(w.max(1 << 13) - tmp.len());
            }
            tmp.resize(w, 0);
            out.fill(zero);
            for y in 0..h {
                let r = y + pad;
                // Even and odd columns of the padded row (c = x + pad) go to two phase planes,
                // at c / 2: two strided copies instead of a branch and a check per value.
                row(q, y, tmp);
                for phase in 0..2 {
                    let x0 = (phase + pad) % 2; // first x whose column has this parity
                    let at = g.position(r, phase) + (x0 + pad) / 2;
                    let src = tmp[x0.min(w)..].iter().step_by(2);
                    for (d, &v) in out[at..at + src.len()].iter_mut().zip(src) {
                        *d = v;
                    }
                }
            }
        })
    });
}

/// The (block, first output channel) pairs of one direct-conv task, in the order both engines
/// run them: blocks `blocks` in runs of `run`, and each 32-channel group starting in `channels`
/// over a whole run before the next group — so that a group's weights are read once per run,
/// not once per block (every block going through every group streamed all of a deep conv's
/// weights, megabytes past L2, per 32 pixels).
#[cfg(target_arch = "x86_64")]
pub(super) fn block_order(
    blocks: std::ops::Range<usize>,
    channels: std::ops::Range<usize>,
    run: usize,
) -> impl Iterator<Item = (usize, usize)> {
    let end = blocks.end;
    blocks.step_by(run).flat_map(move |r0| {
        let run = r0..(r0 + run).min(end);
        let groups = channels.clone().step_by(COUT_GROUP);
        groups.flat_map(move |o| run.clone().map(move |b| (b, o)))
    })
}

/// Stride-2 phase planes of `g` for `words` channel words, from stride-1 planes `src` of the
/// same padded map (the planes a chained producer writes: `hp × wp` words per channel word):
/// the same words [`fill_planes`] writes from the values, in a pass over u8 quads instead of a
/// max and a pack over f32 maps. The rest of `x` (phase positions past an odd padded side,
/// words past `words`) is `zero`. False (nothing written) where `src` or `x` is too short.
pub(crate) fn phase_planes_from(
    g: &DirectGeom,
    src: &[u32],
    words: usize,
    zero: u32,
    x: &mut [u32],
) -> bool {
    use rayon::prelude::*;
    let (ws, map) = (g.word_stride(), g.hp * g.wp);
    if g.stride != 2 || x.len() < words * ws || src.len() < words * map {
        return false;
    }
    let (used, rest) = x.split_at_mut(words * ws);
    rest.fill(zero);
    used.par_chunks_mut(ws).enumerate().for_each(|(q, out)| {
        let plane = &src[q * map..(q + 1) * map];
        // Only an odd padded side leaves phase positions without a source.
        if g.hp % 2 == 1 || g.wp % 2 == 1 {
            out.fill(zero);
        }
        for (r, row) in plane.chunks_exact(g.wp).enumerate() {
            for phase in 0..2 {
                let at = g.position(r, phase);
                let from = row[phase..].iter().step_by(2);
                for (d, &v) in out[at..at + from.len()].iter_mut().zip(from) {
                    *d = v;
                }
            }
        }
    });
    true
}

thread_local! {
    /// One input row of a stride-2 fill, kept per thread (no allocation per call).
    static ROW: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}
