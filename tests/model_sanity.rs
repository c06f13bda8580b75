//! The real COCO yolov3-tiny sees a person in bus.jpg (full parity vs OpenCV lives elsewhere).

mod common;

use candle_core::{Device, Tensor};
use kestrel::model::{Darknet, ForwardOptions};

fn load_bus(size: u32) -> Tensor {
    let img = image::open(common::asset("bus.jpg"))
        .expect("bus.jpg decodes")
        .to_rgb8();
    let img = image::imageops::resize(&img, size, size, image::imageops::FilterType::Triangle);
    let mut chw = vec![0f32; 3 * (size * size) as usize];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            chw[c * (size * size) as usize + (y * size + x) as usize] = p[c] as f32 / 255.0;
        }
    }
    Tensor::from_vec(chw, (1, 3, size as usize, size as usize), &Device::Cpu).unwrap()
}

fn best_person_score(heads: &[kestrel::model::YoloOutput]) -> f32 {
    let mut best = 0f32;
    for h in heads {
        let rows: Vec<Vec<f32>> = h.decoded.squeeze(0).unwrap().to_vec2().unwrap();
        for r in rows {
            assert!(r.iter().all(|v| v.is_finite()), "non-finite output");
            best = best.max(r[4] * r[5]);
        }
    }
    best
}

#[test]
fn tiny_finds_a_person_in_bus_jpg() {
    let cfg = common::asset("yolov3-tiny.cfg");
    let net = Darknet::load(&cfg, &common::asset("yolov3-tiny.weights"), &Device::Cpu).unwrap();
    assert_eq!(net.num_classes(), 80);
    assert_eq!(net.input_size(), (416, 416));
    let heads = net.forward(&load_bus(416)).unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!(heads[0].stride, 32);
    assert_eq!(heads[0].raw.dims(), &[1, 255, 13, 13]);
    assert_eq!(heads[1].decoded.dims(), &[1, 3 * 26 * 26, 85]);
    let best = best_person_score(&heads);
    assert!(best > 0.5, "best person score {best}");
    // Degrading the stride-16 head's features must change its output, not the other head's.
    let opts = ForwardOptions {
        degrade: vec![(16, 4.0)],
    };
    let deg = net.forward_with(&load_bus(416), &opts).unwrap();
    let diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    assert_eq!(diff(&heads[0].raw, &deg[0].raw), 0.0);
    assert!(diff(&heads[1].raw, &deg[1].raw) > 1e-3);
}

#[test]
fn non_square_input_runs() {
    let cfg = common::asset("yolov3-tiny.cfg");
    let net = Darknet::load(&cfg, &common::asset("yolov3-tiny.weights"), &Device::Cpu).unwrap();
    let x = Tensor::zeros((1, 3, 320, 480), candle_core::DType::F32, &Device::Cpu).unwrap();
    let heads = net.forward(&x).unwrap();
    assert_eq!(heads[0].raw.dims(), &[1, 255, 10, 15]);
    assert_eq!(heads[1].decoded.dims(), &[1, 3 * 20 * 30, 85]);
    let bad = Tensor::zeros((1, 3, 100, 480), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(net.forward(&bad).is_err());
}

/// Forwards running at once on several threads share the rayon pool (and its workers' scratch
/// buffers, which a worker waiting in a join may lend to another forward's task): every result
/// must equal the one computed alone.
#[test]
fn concurrent_forwards_equal_a_solo_forward() {
    let net = std::sync::Arc::new(
        Darknet::load(
            &common::asset("yolov3-tiny.cfg"),
            &common::asset("yolov3-tiny.weights"),
            &Device::Cpu,
        )
        .unwrap(),
    );
    let x = load_bus(416);
    let raw = |heads: Vec<kestrel::model::YoloOutput>| -> Vec<Vec<f32>> {
        heads
            .iter()
            .map(|h| h.raw.flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    };
    let solo = raw(net.forward(&x).unwrap());
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let (net, x) = (net.clone(), x.clone());
            std::thread::spawn(move || {
                (0..3)
                    .map(|_| raw(net.forward(&x).unwrap()))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for r in runs {
        for heads in r.join().expect("no forward panics") {
            assert_eq!(
                heads, solo,
                "a concurrent forward differs from the solo one"
            );
        }
    }
}

/// One network fed sizes and batches in turn re-plans its buffers each time the shape changes:
/// every answer equals a fresh network's, and a batch of two equals two single forwards.
#[test]
fn changing_input_sizes_and_batches_replan_without_stale_buffers() {
    let load = || {
        Darknet::load(
            &common::asset("yolov3-tiny.cfg"),
            &common::asset("yolov3-tiny.weights"),
            &Device::Cpu,
        )
        .unwrap()
    };
    let raw = |heads: Vec<kestrel::model::YoloOutput>| -> Vec<Vec<f32>> {
        heads
            .iter()
            .map(|h| h.raw.flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    };
    let net = load();
    let (big, small) = (load_bus(416), load_bus(320));
    for x in [&big, &small, &big, &small] {
        assert_eq!(
            raw(net.forward(x).unwrap()),
            raw(load().forward(x).unwrap())
        );
    }
    let pair = Tensor::cat(&[&small, &small.affine(0.5, 0.2).unwrap()], 0).unwrap();
    let both = raw(net.forward(&pair).unwrap());
    let one = raw(net.forward(&small).unwrap());
    let other = raw(net.forward(&small.affine(0.5, 0.2).unwrap()).unwrap());
    for (k, head) in both.iter().enumerate() {
        let half = head.len() / 2;
        assert_eq!(&head[..half], one[k].as_slice(), "batch item 0, head {k}");
        assert_eq!(&head[half..], other[k].as_slice(), "batch item 1, head {k}");
    }
}

#[test]
fn layer_times_cover_every_layer_of_the_frames_run() {
    let cfg = common::asset("yolov3-tiny.cfg");
    let net = Darknet::load(&cfg, &common::asset("yolov3-tiny.weights"), &Device::Cpu).unwrap();
    assert_eq!(net.layer_times(), (Vec::new(), 0), "nothing before a frame");
    let x = load_bus(224);
    let started = std::time::Instant::now();
    for _ in 0..3 {
        net.forward(&x).unwrap();
    }
    let wall = started.elapsed();
    let (times, frames) = net.layer_times();
    assert_eq!(frames, 3);
    assert_eq!(times.len(), net.cfg().layers.len());
    let summary = kestrel::model::summary(net.cfg(), 224, 224).unwrap();
    for (l, t) in summary.layers.iter().zip(&times) {
        if l.kind == "conv" {
            assert!(!t.is_zero(), "conv {} has no time", l.index);
        }
    }
    // A mean per frame: the layers of one frame add up to less than the three frames took.
    let sum: std::time::Duration = times.iter().sum();
    assert!(sum * 3 <= wall, "sum {sum:?} x 3 > wall {wall:?}");
    net.reset_layer_times();
    assert_eq!(net.layer_times().1, 0);
}
