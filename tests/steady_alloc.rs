//! A steady-state CPU forward allocates no activation: every layer output lives in buffers
//! planned on the first frame of an input size and reused on every later one. What a frame still
//! allocates is the heads it hands back and the `gemm` crate's per-call packing buffers (its API
//! takes no caller scratch), a fraction of the activations. Counted by dhat's heap profiler on two
//! real cfgs (random weights).

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
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, size) in [("yolov3-tiny.cfg", 416), ("prune_0.95.cfg", 320)] {
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
        for (blocks, bytes) in [steady, again] {
            assert!(
                bytes * 3 < activation_bytes,
                "{name}: a steady frame allocated {bytes} B, the activations are {activation_bytes} B"
            );
            assert!(bytes >= head_bytes, "{name}: the heads are allocated");
            assert!(
                blocks as usize <= 16 * net.cfg().layers.len(),
                "{name}: a steady frame made {blocks} allocations"
            );
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
