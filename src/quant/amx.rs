//! Intel AMX (Advanced Matrix Extensions, Sapphire Rapids and later) for the int8 conv: one
//! `tdpbsud` multiplies a 16×64 int8 weight tile by a 64×16 u8 activation tile into 16×16 i32
//! sums (16 384 multiply-adds per instruction, 8× what `vpdpbusd` does per cycle on this core).
//!
//! Rust's AMX intrinsics are not stable, so the five instructions used are written in `asm!`.
//! Linux hands out the 8 KiB tile state only after the process asks (`arch_prctl`), so
//! [`available`] asks once; any failure leaves the VNNI kernel in charge. `KESTREL_AMX=0`
//! turns it off (A/B timing, and a way out should a kernel or hypervisor misbehave).

use std::sync::OnceLock;

/// Output channels per kernel call: two 16-row weight tiles.
pub(crate) const COUT_GROUP: usize = 32;
/// Pixels per kernel call: two 16-column activation tiles (the packed block of `int8`).
pub(crate) const PIXELS: usize = 32;
/// K words (4 bytes each) per tile step: one 64-byte tile row.
pub(crate) const K_STEP: usize = 16;

/// Whether the AMX int8 kernel runs here: CPU support (cpuid), the kernel's grant of the tile
/// state to this process, and `KESTREL_AMX` not `0`. Asked once.
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| std::env::var("KESTREL_AMX").as_deref() != Ok("0") && detect())
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use std::arch::x86_64::__cpuid_count;
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
    if max_leaf < 7 || edx7 & (AMX_TILE | AMX_INT8) != (AMX_TILE | AMX_INT8) {
        return false;
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
    ok && granted & (1 << XFEATURE_XTILEDATA) != 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// A conv's int8 weights laid out for the tiles: `[cout rounded up to 32][kq rounded up to 16]`
/// words, zero-padded (zero weights make the padded K words and output rows contribute nothing).
pub(crate) struct AmxWeights {
    w: Vec<i32>,
    cout: usize,
    kq: usize,
    kq16: usize,
}

impl AmxWeights {
    /// From `[cout][kq]` words of four int8 weights each.
    pub fn new(w: &[i32], cout: usize, kq: usize) -> AmxWeights {
        let kq16 = kq.div_ceil(K_STEP) * K_STEP;
        let rows = cout.div_ceil(COUT_GROUP) * COUT_GROUP;
        let mut padded = vec![0i32; rows * kq16];
        for (dst, src) in padded.chunks_exact_mut(kq16).zip(w.chunks_exact(kq)) {
            dst[..kq].copy_from_slice(src);
        }
        AmxWeights {
            w: padded,
            cout,
            kq,
            kq16,
        }
    }

    /// Words of one packed pixel block the kernel reads: `kq16` rows of 32 pixels (the rows
    /// past `kq` meet zero weights; they only have to be readable).
    pub fn block_words(&self) -> usize {
        self.kq16 * PIXELS
    }

    /// For every group of 32 output channels `o`, the sums `acc[r][px] = Σ_k w[o + r][k] ·
    /// xb[k][px]` of one packed block `xb` (`[kq][32]` words, at least [`block_words`] long),
    /// handed to `group(o, rows, acc)` with `rows` = the real channels of the group. Returns
    /// false (and does nothing) when `xb` is too short.
    #[cfg(target_arch = "x86_64")]
    pub fn for_each_group(
        &self,
        xb: &[u32],
        mut group: impl FnMut(usize, usize, &[[i32; PIXELS]; COUT_GROUP]),
    ) -> bool {
        if xb.len() < self.block_words() || self.kq == 0 {
            return false;
        }
        let config = TileConfig::new();
        let mut acc = [[0i32; PIXELS]; COUT_GROUP];
        // SAFETY: `available()` (checked by the caller before building AmxWeights is used)
        // found AMX-TILE/INT8 and the tile state granted; the config is a valid palette-1
        // layout (8 tiles of 16 rows × 64 bytes).
        unsafe { config.load() };
        let mut o = 0;
        while o < self.cout {
            let w = &self.w[o * self.kq16..(o + COUT_GROUP) * self.kq16];
            // SAFETY: `w` holds 32 rows of kq16 words and `xb` kq16 rows of 32 words (checked
            // above), `acc` 32 rows of 32 i32: every tile load and store stays inside them.
            unsafe { kernel(w.as_ptr(), self.kq16, xb.as_ptr(), acc.as_mut_ptr()) };
            group(o, COUT_GROUP.min(self.cout - o), &acc);
            o += COUT_GROUP;
        }
        // SAFETY: releases this thread's tile state (no tile is in use past this point).
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
        true
    }
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

/// `c[32][32] = w[32][kq16 words] · x[kq16][32 words]` (s8 weights × u8 activations, i32 sums).
///
/// # Safety
/// Tiles configured by [`TileConfig::load`]; `w` readable for 32·kq16 words, `x` for kq16·32
/// words, `c` writable for 32·32 i32; kq16 a multiple of 16.
#[cfg(target_arch = "x86_64")]
unsafe fn kernel(w: *const i32, kq16: usize, x: *const u32, c: *mut [i32; PIXELS]) {
    use std::arch::asm;
    let w_stride = kq16 * 4;
    let x_stride = PIXELS * 4;
    let c_stride = PIXELS * 4;
    // SAFETY (every block below): addresses are inside the ranges of the function's contract:
    // a tile row r of weights is w + r·kq16 + q (q + 16 ≤ kq16), of activations x + (q + r)·32
    // (+16 for the second half), of sums c + r·32 (+16).
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        let mut q = 0;
        while q < kq16 {
            asm!(
                "tileloadd tmm4, [{a0} + {ws}*1]",
                "tileloadd tmm5, [{a1} + {ws}*1]",
                "tileloadd tmm6, [{b0} + {xs}*1]",
                "tileloadd tmm7, [{b1} + {xs}*1]",
                "tdpbsud tmm0, tmm4, tmm6",
                "tdpbsud tmm1, tmm4, tmm7",
                "tdpbsud tmm2, tmm5, tmm6",
                "tdpbsud tmm3, tmm5, tmm7",
                a0 = in(reg) w.add(q),
                a1 = in(reg) w.add(16 * kq16 + q),
                b0 = in(reg) x.add(q * PIXELS),
                b1 = in(reg) x.add(q * PIXELS + 16),
                ws = in(reg) w_stride,
                xs = in(reg) x_stride,
                options(nostack, readonly)
            );
            q += K_STEP;
        }
        let c = c as *mut i32;
        asm!(
            "tilestored [{c0} + {cs}*1], tmm0",
            "tilestored [{c1} + {cs}*1], tmm1",
            "tilestored [{c2} + {cs}*1], tmm2",
            "tilestored [{c3} + {cs}*1], tmm3",
            c0 = in(reg) c,
            c1 = in(reg) c.add(16),
            c2 = in(reg) c.add(16 * PIXELS),
            c3 = in(reg) c.add(16 * PIXELS + 16),
            cs = in(reg) c_stride,
            options(nostack)
        );
    }
}
