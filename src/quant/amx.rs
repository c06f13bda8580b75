//! Intel AMX (Advanced Matrix Extensions, Sapphire Rapids and later), the tile engine of the direct
//! int8 and bf16 convs (`super::direct`): one `tdpbsud` multiplies a 16×64 int8 weight tile by a
//! 64×16 u8 activation tile into 16×16 i32 sums (16 384 multiply-adds per instruction, 8× what
//! `vpdpbusd` does per cycle on such a core); `tdpbf16ps` does the same for pairs of bf16 into
//! f32 sums.
//!
//! Rust's AMX intrinsics are not stable, so the five instructions used are written in `asm!`.
//! Linux hands out the 8 KiB tile state only after the process asks (`arch_prctl`), so
//! [`available`] asks once; any failure leaves the VNNI kernel in charge. `KESTREL_AMX=0`
//! turns it off (A/B timing, and a way out should a kernel or hypervisor misbehave).

// Off x86_64 only the detection runs (it answers false): the tile code is compiled out.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

#[cfg(target_arch = "x86_64")]
use super::direct::{block_order, DirectGeom, DirectWeights, TileOp, COUT_GROUP, PIXELS};
use std::sync::OnceLock;

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

/// Blocks a task runs group after group (see `direct::block_order`; runs of 4 and 16 measured
/// the same).
const BLOCK_RUN: usize = 8;

/// [`DirectWeights::run`] on the tiles (bounds checked there).
#[cfg(target_arch = "x86_64")]
pub(super) fn run_tiles(
    d: &DirectWeights,
    x: &[u32],
    g: &DirectGeom,
    (b0, b1): (usize, usize),
    mut block: impl FnMut(usize, usize, usize, &[[i32; PIXELS]; COUT_GROUP]),
) {
    let mut config = TileConfig::new();
    for t in 4..6 {
        config.colsb[t] = (d.chunk_q * 4) as u16;
    }
    for t in 6..8 {
        config.rows[t] = d.chunk_q as u8;
    }
    let stride = g.word_stride();
    let group_len = d.group_len();
    let mut acc = [[0i32; PIXELS]; COUT_GROUP];
    // SAFETY: the engine is Amx only where `available` found AMX and the OS granted it; the
    // config is a valid palette-1 layout: 16-row tiles, A tiles of chunk_q·4
    // ≤ 64 bytes per row, B tiles of chunk_q ≤ 16 rows of 64 bytes.
    unsafe { config.load() };
    // A 512 → 1024 3×3 conv would stream 4.7 MB of int8 weights per block, past L2, were the
    // blocks not taken in runs (`direct::block_order`).
    for (b, o) in block_order(b0..b1, 0..d.cout, BLOCK_RUN) {
        let p0 = b * PIXELS;
        let w = &d.w[(o / 16) * group_len..(o / 16 + 2) * group_len];
        let mut steps = 0;
        // SAFETY: tiles configured above.
        unsafe { zero_sums() };
        for ky in 0..d.size {
            for kx in 0..d.size {
                let shift = p0 + g.position(ky, kx);
                for j in 0..d.chunks {
                    let a = steps * 16 * d.chunk_q;
                    let xb = j * d.chunk_q * stride + shift;
                    // SAFETY: weight rows a.. + 16·chunk_q (and the second group at
                    // + group_len) lie in `w`; activation rows xb + r·word_stride for
                    // r < chunk_q, 32 words each, lie in `x` (`DirectWeights::run`).
                    unsafe {
                        let (a0, a1) = (w.as_ptr().add(a), w.as_ptr().add(group_len + a));
                        let xp = x.as_ptr().add(xb);
                        match d.op {
                            TileOp::Int8 => step(a0, a1, d.chunk_q * 4, xp, stride * 4),
                            TileOp::Bf16 => step_bf16(a0, a1, d.chunk_q * 4, xp, stride * 4),
                            TileOp::F32 => unreachable!("no f32 tiles: Engine::for_op"),
                        }
                    };
                    steps += 1;
                }
            }
        }
        // SAFETY: `acc` holds 32 rows of 32 i32.
        unsafe { store(acc.as_mut_ptr()) };
        block(b, o, COUT_GROUP.min(d.cout - o), &acc);
    }
    // SAFETY: no tile is used past this point on this thread.
    unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
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
