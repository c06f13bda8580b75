//! Reduced precision end to end with the real yolov3-tiny: agreement with f32 on real images,
//! model-file round trip, and clear errors for damaged model files.

mod common;

use common::{asset, kestrel, path_str};
use kestrel::model::{Cfg, DarknetWeights};
use kestrel::quant::check::check;
use kestrel::quant::file::ModelFile;
use kestrel::quant::loader::to_model_file;
use kestrel::quant::{load_any, PlanMode, Precision};

fn images() -> Vec<std::path::PathBuf> {
    vec![asset("bus.jpg"), asset("zidane.jpg")]
}

#[test]
fn q8_and_f16_agree_with_f32_on_real_images() {
    let cfg = asset("yolov3-tiny.cfg");
    let rows = check(
        Some(&cfg),
        &asset("yolov3-tiny.weights"),
        &images(),
        &[Precision::F16, Precision::Q8],
    )
    .unwrap();
    for r in &rows {
        eprintln!("{r:?}");
        assert!(r.truth_boxes >= 4, "f32 found too few boxes: {r:?}");
        assert!(
            r.ap50 >= 0.95,
            "{} agreement too low: {r:?}",
            r.precision.name()
        );
        assert!(r.max_abs_raw > 0.0, "reduced path not used: {r:?}");
    }
}

/// bf16 on the CPU (AMX-BF16 or AVX512-BF16 where present): closer to f32 than q8, the same
/// detections; where the CPU lacks both the loader refuses it with a message naming them.
#[test]
fn cpu_bf16_agrees_with_f32_where_the_cpu_runs_it_and_is_refused_elsewhere() {
    let (cfg, weights) = (asset("yolov3-tiny.cfg"), asset("yolov3-tiny.weights"));
    if !kestrel::quant::cpu_bf16_available() {
        println!("no AMX-BF16 or AVX512-BF16 on this CPU: checking that bf16 is refused clearly");
        let err = load_any(
            Some(&cfg),
            &weights,
            &candle_core::Device::Cpu,
            Some(Precision::Bf16),
            PlanMode::AllReduced,
        )
        .err()
        .expect("bf16 refused without AMX-BF16 and AVX512-BF16");
        let err = err.to_string();
        assert!(
            err.contains("AMX-BF16") && err.contains("AVX512-BF16"),
            "{err}"
        );
        return;
    }
    let rows = check(
        Some(&cfg),
        &weights,
        &images(),
        &[Precision::Q8, Precision::Bf16],
    )
    .unwrap();
    eprintln!("{rows:?}");
    let (q8, bf16) = (&rows[0], &rows[1]);
    assert!(bf16.ap50 >= 0.95, "bf16 agreement too low: {bf16:?}");
    assert!(bf16.max_abs_raw > 0.0, "bf16 path not used: {bf16:?}");
    assert!(
        bf16.max_abs_raw < q8.max_abs_raw,
        "bf16 should drift less than q8: {bf16:?} vs {q8:?}"
    );
}

#[test]
fn model_file_round_trips_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny.q8.gguf");
    let (cfg_path, weights_path) = (asset("yolov3-tiny.cfg"), asset("yolov3-tiny.weights"));
    let st = kestrel()
        .args(["quantize", "--cfg", path_str(&cfg_path), "--weights"])
        .arg(&weights_path)
        .args(["--dtype", "q8_0", "--out", path_str(&out)])
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    let cfg = Cfg::parse_str(&text, "tiny").unwrap();
    let weights = DarknetWeights::read(&weights_path, &cfg).unwrap();
    let want = to_model_file(&cfg, text.clone(), &weights, Precision::Q8).unwrap();
    let got = ModelFile::read(&out).unwrap();
    assert_eq!(got.cfg_text, text);
    assert_eq!(got.precision, Precision::Q8);
    assert_eq!(got.convs.len(), want.convs.len());
    for (g, w) in got.convs.iter().zip(&want.convs) {
        assert_eq!(g.layer, w.layer);
        assert_eq!(g.kernel_shape, w.kernel_shape);
        assert_eq!(g.kernel.data().unwrap(), w.kernel.data().unwrap());
        assert_eq!(g.bias, w.bias);
    }
    let f32_len = std::fs::metadata(&weights_path).unwrap().len() as f64;
    let q8_len = std::fs::metadata(&out).unwrap().len() as f64;
    assert!(q8_len < 0.3 * f32_len, "q8 file {q8_len} vs f32 {f32_len}");
    // Loads without a cfg, in q8, with every conv that can be reduced reduced.
    let loaded = load_any(
        None,
        &out,
        &candle_core::Device::Cpu,
        None,
        PlanMode::AllReduced,
    )
    .unwrap();
    assert_eq!(loaded.precision, Precision::Q8);
    assert!(loaded.plan.iter().all(|e| e.reduced) && !loaded.plan.is_empty());
}

fn expect_clear_error(file: &std::path::Path, needle: &str) {
    let out = kestrel()
        .args(["quantize", "--weights", path_str(file), "--check"])
        .arg(asset("bus.jpg"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "damaged file accepted");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(path_str(file)),
        "error does not name the file: {err}"
    );
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

#[test]
fn damaged_model_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("tiny.f16.gguf");
    let st = kestrel()
        .args(["quantize", "--cfg"])
        .arg(asset("yolov3-tiny.cfg"))
        .arg("--weights")
        .arg(asset("yolov3-tiny.weights"))
        .args(["--dtype", "f16", "--out", path_str(&good)])
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    expect_clear_error(&truncated, "truncated");
    let header_cut = dir.path().join("header_cut.gguf");
    std::fs::write(&header_cut, &bytes[..100]).unwrap();
    expect_clear_error(&header_cut, "not a valid Kestrel model file");
    let mut corrupt = bytes.clone();
    corrupt[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // absurd tensor count
    let corrupt_path = dir.path().join("corrupt.gguf");
    std::fs::write(&corrupt_path, &corrupt).unwrap();
    expect_clear_error(&corrupt_path, "not a valid Kestrel model file");
}

/// The reduced convs (int8 and bf16 on AMX tiles or AVX-512 registers) keep per-thread
/// scratch and tile state: forwards from several threads at once equal a solo forward exactly.
#[test]
fn concurrent_reduced_forwards_equal_a_solo_forward() {
    let (cfg, weights) = (asset("yolov3-tiny.cfg"), asset("yolov3-tiny.weights"));
    let mut precisions = vec![Precision::Q8];
    if kestrel::quant::cpu_bf16_available() {
        precisions.push(Precision::Bf16);
    }
    for precision in precisions {
        let dev = candle_core::Device::Cpu;
        let loaded = load_any(
            Some(&cfg),
            &weights,
            &dev,
            Some(precision),
            PlanMode::AllReduced,
        )
        .unwrap();
        let net = std::sync::Arc::new(loaded.model);
        let x = candle_core::Tensor::rand(0f32, 1f32, (1, 3, 416, 416), &dev).unwrap();
        let raw = |net: &kestrel::model::Darknet, x: &candle_core::Tensor| -> Vec<Vec<f32>> {
            net.forward(x)
                .unwrap()
                .iter()
                .map(|h| h.raw.flatten_all().unwrap().to_vec1().unwrap())
                .collect()
        };
        let solo = raw(&net, &x);
        let runs: Vec<_> = (0..3)
            .map(|_| {
                let (net, x) = (net.clone(), x.clone());
                std::thread::spawn(move || (0..2).map(|_| raw(&net, &x)).collect::<Vec<_>>())
            })
            .collect();
        for r in runs {
            for heads in r.join().expect("no forward panics") {
                assert_eq!(
                    heads,
                    solo,
                    "{}: a concurrent forward differs",
                    precision.name()
                );
            }
        }
    }
}

/// Chained int8 convs (`quant::chain`, opt-in): the first frame of a size runs unchained and
/// calibrates the chains' scales; later frames pass int8 planes from conv to conv. On real frames their
/// heads stay as close to f32 as the unchained int8 forward's, frame 1 is the unchained one
/// bit for bit, and without the direct int8 kernel nothing is chained.
#[test]
fn chained_int8_frames_stay_as_close_to_f32_as_unchained_ones() {
    use kestrel::detect::{load_image, DetectOptions, Detector};
    let (cfg, weights) = (asset("yolov3-tiny.cfg"), asset("yolov3-tiny.weights"));
    let dev = candle_core::Device::Cpu;
    let load = |p| {
        let loaded = load_any(Some(&cfg), &weights, &dev, Some(p), PlanMode::AllReduced);
        loaded.unwrap().model
    };
    let f32_net = load(Precision::F32);
    let mut chained = load(Precision::Q8);
    chained.set_int8_chaining(true);
    let mut plain = load(Precision::Q8);
    plain.set_int8_chaining(false);
    let (w, h) = f32_net.input_size();
    let opts = DetectOptions {
        width: w as u32,
        height: h as u32,
        ..DetectOptions::default()
    };
    let det = Detector::new(f32_net, opts).unwrap();
    let frames = ["bus.jpg", "zidane.jpg", "bus.jpg", "zidane.jpg"];
    for (k, name) in frames.iter().enumerate() {
        let (x, _) = det.preprocess(&load_image(&asset(name)).unwrap()).unwrap();
        let truth = raw_heads(det.infer(&x).unwrap());
        let c = raw_heads(chained.forward(&x).unwrap());
        let p = raw_heads(plain.forward(&x).unwrap());
        let (ec, ep) = (rel_l2(&c, &truth), rel_l2(&p, &truth));
        println!("frame {k} ({name}): chained {ec:.4}, unchained {ep:.4} rel. L2 from f32");
        if k == 0 {
            assert_eq!(c, p, "the calibrating first frame runs unchained");
        }
        assert!(
            ec <= 1.25 * ep + 0.005,
            "frame {k}: chained {ec} vs unchained {ep}"
        );
    }
    assert_eq!(plain.int8_chains(), 0, "chaining turned off");
    let direct = kestrel::quant::cpu_int8_direct_available();
    println!(
        "{} int8 chains (direct int8 kernel: {direct})",
        chained.int8_chains()
    );
    if direct {
        assert!(chained.int8_chains() >= 2, "yolov3-tiny's heads chain");
    } else {
        assert_eq!(chained.int8_chains(), 0);
    }
}

/// The residual nets: every 1×1 → 3×3 pair chained, and each block's residual add writing the
/// next block's int8 planes with its sums. With the frame the chains calibrated on repeated, the
/// chained forward is the unchained one bit for bit (same scales, same sums, the shortcut's exact
/// sums); on another frame it stays as close to f32 as the unchained one. prune_0.95 (random
/// weights) at 320.
#[test]
fn chains_through_residual_adds_match_the_plain_int8_forward() {
    use kestrel::model::{Cfg, Darknet, DarknetWeights};
    use kestrel::quant::loader::finish;
    let cfg = Cfg::parse_file(&common::cfg("prune_0.95.cfg")).unwrap();
    let weights = DarknetWeights::random(&cfg, 3).unwrap();
    let dev = candle_core::Device::Cpu;
    let net = |p| {
        let n = Darknet::from_parts(cfg.clone(), &weights, &dev).unwrap();
        finish(n, &weights, p, PlanMode::AllReduced, None, None)
            .unwrap()
            .model
    };
    let (f32_net, mut chained, mut plain) =
        (net(Precision::F32), net(Precision::Q8), net(Precision::Q8));
    chained.set_int8_chaining(true);
    plain.set_int8_chaining(false);
    let raw = |net: &Darknet, x: &candle_core::Tensor| raw_heads(net.forward(x).unwrap());
    // Two different frames of the same kind (uniform [0, 1), fixed seeds).
    let frame = |mut seed: u64| {
        let v: Vec<f32> = (0..3 * 320 * 320)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        candle_core::Tensor::from_vec(v, (1, 3, 320, 320), &dev).unwrap()
    };
    let (x1, x2) = (frame(1), frame(2));
    for (k, x) in [&x1, &x1, &x2, &x2].into_iter().enumerate() {
        let (c, p) = (raw(&chained, x), raw(&plain, x));
        if k < 2 {
            assert_eq!(c, p, "frame {k}: the calibration frame repeated");
        } else {
            let truth = raw(&f32_net, x);
            let (ec, ep) = (rel_l2(&c, &truth), rel_l2(&p, &truth));
            println!("frame {k}: chained {ec:.4}, unchained {ep:.4} rel. L2 from f32");
            assert!(
                ec <= 1.25 * ep + 0.005,
                "frame {k}: chained {ec} vs unchained {ep}"
            );
        }
    }
    let n = chained.int8_chains();
    println!("{n} int8 chains");
    if kestrel::quant::cpu_int8_direct_available() {
        // 23 residual blocks, each 1×1 → 3×3 and shortcut → next 1×1, the heads, and the
        // stride-2 convs reading the layer before them (68 counted here; 63 before stride-2
        // readers chained).
        assert!(n >= 45, "only {n} chains");
    } else {
        assert_eq!(n, 0);
    }
}

/// Every head's raw output, back to back.
fn raw_heads(heads: Vec<kestrel::model::YoloOutput>) -> Vec<f32> {
    heads
        .iter()
        .flat_map(|h| h.raw.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

/// ‖a − b‖ / ‖b‖.
fn rel_l2(a: &[f32], b: &[f32]) -> f32 {
    let d: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (d / b.iter().map(|y| y * y).sum::<f32>()).sqrt()
}
