//! The engine's parity checks, run on every device this build can reach and in every compute
//! dtype a device offers: the real yolov3-tiny against OpenCV DNN (f32 raw heads to 1e-4), and
//! f16 (and on CUDA bf16) against f32 (pseudo-AP50 ≥ 0.95 on real photos).
//!
//! "cpu-candle" runs Candle's own conv2d / max-pool on the CPU: the very code path CUDA takes,
//! so it is checked on every machine. `cuda:0` joins when the build has the `cuda` feature and a
//! GPU answers; otherwise the CUDA test is reported as ignored (no feature) or prints why it
//! skipped (feature, no GPU).

mod common;
use candle_core::{DType, Device};
use common::*;
use kestrel::detect::{load_image, DetectOptions, Detection, Detector, ResizeMode};
use kestrel::model::{Cfg, ConvBackend, Darknet, DarknetWeights};
use kestrel::quant::accuracy::{pseudo_ap50, Scored};

fn tiny() -> (Cfg, DarknetWeights) {
    let cfg = Cfg::parse_file(&asset("yolov3-tiny.cfg")).unwrap();
    let w = DarknetWeights::read(&asset("yolov3-tiny.weights"), &cfg).unwrap();
    (cfg, w)
}

fn detector(device: &Device, dtype: DType) -> Detector {
    let (cfg, w) = tiny();
    let model = Darknet::with_backend(cfg, &w, device, ConvBackend::Candle)
        .unwrap()
        .with_compute_dtype(dtype)
        .unwrap();
    let opts = DetectOptions {
        resize: ResizeMode::Letterbox,
        conf: 0.25,
        ..Default::default()
    };
    Detector::new(model, opts).unwrap()
}

fn scored(dets: &[Detection]) -> Vec<Scored> {
    dets.iter()
        .map(|d| Scored {
            class: d.class_id,
            score: d.score,
            bbox: [d.bbox.x, d.bbox.y, d.bbox.x + d.bbox.w, d.bbox.y + d.bbox.h],
        })
        .collect()
}

/// Raw heads of the f32 network against OpenCV on a lossless copy of bus.jpg, then f16 and bf16
/// detections against f32 on both real photos.
fn check_device(device: &Device, name: &str, half: &[DType]) {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("bus.png");
    load_image(&asset("bus.jpg")).unwrap().save(&png).unwrap();
    let f32_det = detector(device, DType::F32);
    let img = load_image(&png).unwrap();
    let (x, _) = f32_det.preprocess(&img).unwrap();
    let heads = f32_det.infer(&x).unwrap();
    let r = opencv_reference(
        &asset("yolov3-tiny.cfg"),
        &asset("yolov3-tiny.weights"),
        &png,
        (416, 416),
        "letterbox",
        0.25,
        tmp.path(),
    );
    assert_eq!(heads.len(), r.raw.len(), "{name}: head count");
    for (k, h) in heads.iter().enumerate() {
        let ours: Vec<f32> = h.raw.flatten_all().unwrap().to_vec1().unwrap();
        let err = relative_error(&ours, &r.raw[k]);
        assert!(err <= 1e-4, "{name} f32 head {k}: relative error {err}");
    }
    let photos: Vec<_> = [asset("bus.jpg"), asset("zidane.jpg")]
        .iter()
        .map(|p| load_image(p).unwrap())
        .collect();
    let truth: Vec<Vec<Scored>> = photos
        .iter()
        .map(|p| scored(&f32_det.detect(p).unwrap()))
        .collect();
    assert!(
        truth.iter().all(|t| !t.is_empty()),
        "{name}: f32 found nothing"
    );
    for &dtype in half {
        let det = detector(device, dtype);
        let found: Vec<Vec<Scored>> = photos
            .iter()
            .map(|p| scored(&det.detect(p).unwrap()))
            .collect();
        let ap = pseudo_ap50(&truth, &found);
        eprintln!("{name} {dtype:?}: pseudo-AP50 against f32 = {ap:.3}");
        assert!(ap >= 0.95, "{name} {dtype:?}: pseudo-AP50 {ap:.3} < 0.95");
    }
}

#[test]
fn candle_path_on_cpu_matches_opencv_and_its_half_precisions_agree() {
    // Candle has no bf16 matmul on the CPU (CPU bf16 is Kestrel's own AMX conv, tested in
    // quant_precision.rs), so f16 only.
    check_device(&Device::Cpu, "cpu-candle", &[DType::F16]);
}

#[test]
#[cfg_attr(
    not(feature = "cuda"),
    ignore = "CUDA parity needs `--features cuda` and an NVIDIA GPU (scripts/build-cuda.sh)"
)]
fn cuda_matches_opencv_and_its_half_precisions_agree() {
    match Device::new_cuda(0) {
        Ok(gpu) => check_device(&gpu, "cuda:0", &[DType::F16, DType::BF16]),
        Err(e) => eprintln!("SKIPPED cuda parity: no usable GPU here ({e})"),
    }
}

#[test]
fn reduced_dtypes_are_refused_off_the_candle_backend() {
    let (cfg, w) = tiny();
    let cpu = Darknet::from_parts(cfg, &w, &Device::Cpu).unwrap();
    let err = cpu.with_compute_dtype(DType::F16).err().expect("refused");
    assert!(err.to_string().contains("Candle backend"), "{err}");
}

/// Random-weight SlimYOLOv3 (SPP blocks, shortcuts, routes) on the Candle path of `device`
/// against the CPU im2col engine, which parity_random.rs ties to OpenCV: raw heads to 1e-4.
fn check_random_slim(device: &Device, name: &str) {
    let cfg = Cfg::parse_file(&common::cfg("prune_0.95.cfg")).unwrap();
    let w = DarknetWeights::random(&cfg, 7).unwrap();
    let x = candle_core::Tensor::rand(0f32, 1f32, (1, 3, 416, 416), &Device::Cpu).unwrap();
    let reference = Darknet::from_parts(cfg.clone(), &w, &Device::Cpu).unwrap();
    let other = Darknet::with_backend(cfg, &w, device, ConvBackend::Candle).unwrap();
    let (a, b) = (reference.forward(&x).unwrap(), other.forward(&x).unwrap());
    assert_eq!(a.len(), b.len());
    for (k, (ha, hb)) in a.iter().zip(&b).enumerate() {
        let ra: Vec<f32> = ha.raw.flatten_all().unwrap().to_vec1().unwrap();
        let rb: Vec<f32> = hb.raw.flatten_all().unwrap().to_vec1().unwrap();
        let err = relative_error(&rb, &ra);
        assert!(
            err <= 1e-4,
            "{name} prune_0.95 head {k}: relative error {err}"
        );
    }
}

#[test]
fn candle_path_on_cpu_runs_slimyolo_like_the_im2col_engine() {
    check_random_slim(&Device::Cpu, "cpu-candle");
}

#[test]
#[cfg_attr(
    not(feature = "cuda"),
    ignore = "CUDA parity needs `--features cuda` and an NVIDIA GPU (scripts/build-cuda.sh)"
)]
fn cuda_runs_slimyolo_like_the_im2col_engine() {
    match Device::new_cuda(0) {
        Ok(gpu) => check_random_slim(&gpu, "cuda:0"),
        Err(e) => eprintln!("SKIPPED cuda parity: no usable GPU here ({e})"),
    }
}
