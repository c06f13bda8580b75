//! A steady-state CPU forward allocates nothing but the heads it hands back: every layer output
//! lives in buffers planned on the first frame of an input size and reused on every later one,
//! and every kernel's scratch is per thread and kept (on CPUs with AVX-512 no conv is left to the
//! gemm crate, which packs into fresh heap buffers on every call). Counted by dhat's heap profiler
//! on the real cfgs (random weights): f32 on all four nets of the benchmark, int8 and bf16 on two.

use candle_core::{Device, Tensor};
use kestrel::model::{layer_shapes, Cfg, Darknet, DarknetWeights};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Allocations a run of `f` made: (blocks, bytes).
fn allocated(f: impl FnOnce()) -> (u64, u64) {
    let before = dhat::HeapStats::get();
    f();
    let after = dhat::HeapStats::get();
    (
        after.total_blocks - before.total_blocks,
        after.total_bytes - before.total_bytes,
    )
}

#[test]
fn steady_state_frames_allocate_only_the_returned_heads() {
    // One profiler per process: the cases run one after the other in this one test.
    let _profiler = dhat::Profiler::builder().testing().build();
    f32_frames();
    int8_frames();
}

/// The f32 forward: only the heads where the CPU has AVX-512 (the own kernels); elsewhere
/// (the Jetson's ARM cores, older x86) the convs are the gemm crate's, whose packing buffers
/// come on top, a fraction of the activations.
fn f32_frames() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let own_kernels = kestrel::model::cpu_f32_kernels_available();
    let nets = [
        ("yolov3-tiny.cfg", 416),
        ("prune_0.95.cfg", 320),
        ("prune_0.5_0.5.cfg", 320),
        ("yolov3-spp3.cfg", 320),
    ];
    for (name, size) in nets {
        let cfg = Cfg::parse_file(&root.join("models/cfg").join(name)).unwrap();
        let weights = DarknetWeights::random(&cfg, 7).unwrap();
        let activation_bytes: u64 = layer_shapes(&cfg, size, size)
            .unwrap()
            .iter()
            .map(|s| 4 * (s.c * s.h * s.w) as u64)
            .sum();
        let net = Darknet::from_parts(cfg, &weights, &Device::Cpu).unwrap();
        let x = Tensor::full(0.5f32, (1, 3, size, size), &Device::Cpu).unwrap();
        let mut head_bytes = 0u64;
        let first = allocated(|| {
            net.forward(&x).unwrap();
        });
        // The second frame may still fill per-thread scratch a first frame's split left short.
        net.forward(&x).unwrap();
        let steady = allocated(|| {
            let heads = net.forward(&x).unwrap();
            head_bytes = heads
                .iter()
                .map(|h| 4 * (h.raw.elem_count() + h.decoded.elem_count()) as u64)
                .sum();
        });
        let again = allocated(|| drop(net.forward(&x).unwrap()));
        println!(
            "{name}@{size}: first frame {} blocks / {} B; steady frames {steady:?}, {again:?} \
             (blocks, B); heads {head_bytes} B; activations {activation_bytes} B",
            first.0, first.1
        );
        let heads = net
            .cfg()
            .layers
            .iter()
            .filter(|l| matches!(l.kind, kestrel::model::LayerKind::Yolo(_)))
            .count();
        for (blocks, bytes) in [steady, again] {
            assert!(bytes >= head_bytes, "{name}: the heads are allocated");
            if own_kernels {
                // Per head: its two value buffers and the tensors' shapes, strides and handles.
                assert!(
                    bytes <= head_bytes + 4096 && blocks as usize <= 12 * heads + 2,
                    "{name}: a steady f32 frame made {blocks} allocations of {bytes} B for \
                     {heads} heads of {head_bytes} B"
                );
            } else {
                assert!(
                    bytes * 3 < activation_bytes,
                    "{name}: a steady frame allocated {bytes} B, the activations are \
                     {activation_bytes} B"
                );
                assert!(
                    blocks as usize <= 16 * net.cfg().layers.len(),
                    "{name}: a steady frame made {blocks} allocations"
                );
            }
        }
        // Nothing grows from frame to frame.
        assert!(steady.0.abs_diff(again.0) <= 2, "{steady:?} vs {again:?}");
        assert!(
            steady.1.abs_diff(again.1) * 100 <= steady.1,
            "{steady:?} vs {again:?}"
        );
        assert!(
            first.1 > steady.1 + activation_bytes / 8,
            "{name}: the first frame ({} B) should hold the planned buffers",
            first.1
        );
    }
}

/// Every conv int8 on the direct kernel (AMX or AVX-512 VNNI), plain and chained where it can
/// be, then every conv bf16: a steady frame allocates the heads it hands back and nothing else
/// (a few bytes of bookkeeping at most).
fn int8_frames() {
    use kestrel::quant::Precision;
    if !kestrel::quant::cpu_int8_direct_available() {
        println!("no direct int8 kernel on this CPU (AMX or AVX-512 VNNI): q8 not checked");
    } else {
        reduced_frames(Precision::Q8, false);
        reduced_frames(Precision::Q8, true);
    }
    // bf16 (AMX-BF16 or AVX512-BF16): its planes are the workspace's too.
    if !kestrel::quant::cpu_bf16_available() {
        println!("no bf16 conv on this CPU (AMX-BF16 or AVX512-BF16): bf16 not checked");
    } else {
        reduced_frames(Precision::Bf16, false);
    }
}

fn reduced_frames(precision: kestrel::quant::Precision, chained: bool) {
    use kestrel::quant::loader::finish;
    use kestrel::quant::PlanMode;
    let p = precision.name();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, size) in [("yolov3-tiny.cfg", 416), ("prune_0.95.cfg", 320)] {
        let cfg = Cfg::parse_file(&root.join("models/cfg").join(name)).unwrap();
        let weights = DarknetWeights::random(&cfg, 7).unwrap();
        let net = Darknet::from_parts(cfg, &weights, &Device::Cpu).unwrap();
        let loaded = finish(net, &weights, precision, PlanMode::AllReduced, None, None);
        let mut net = loaded.unwrap().model;
        net.set_int8_chaining(chained);
        let x = Tensor::full(0.5f32, (1, 3, size, size), &Device::Cpu).unwrap();
        // Frame 1 calibrates the chains, frame 2 is the first chained one.
        for _ in 0..3 {
            net.forward(&x).unwrap();
        }
        let (mut heads, mut head_bytes) = (0, 0u64);
        let steady = allocated(|| {
            let out = net.forward(&x).unwrap();
            heads = out.len();
            head_bytes = out
                .iter()
                .map(|h| 4 * (h.raw.elem_count() + h.decoded.elem_count()) as u64)
                .sum();
        });
        let again = allocated(|| drop(net.forward(&x).unwrap()));
        println!(
            "{name}@{size} {p}: steady frames {steady:?}, {again:?} (blocks, B); {heads} heads of \
             {head_bytes} B; {} int8 chains",
            net.int8_chains()
        );
        assert_eq!(net.int8_chains() > 0, chained, "{name}: chains");
        for (blocks, bytes) in [steady, again] {
            // Per head: its two value buffers and the tensors' shapes, strides and handles.
            assert!(
                bytes >= head_bytes && bytes <= head_bytes + 4096,
                "{name}: a steady {p} frame allocated {bytes} B for {head_bytes} B of heads"
            );
            assert!(
                blocks as usize <= 12 * heads + 2,
                "{name}: a steady {p} frame made {blocks} allocations for {heads} heads"
            );
        }
    }
}
