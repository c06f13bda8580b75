//! End-to-end tests of `kestrel prune` / `kestrel sparsity`: equivalence of the pruned model
//! with the masked model (checked by OpenCV DNN loading the written files), SlimYOLOv3 pruning
//! of yolov3-spp3, and clear errors on bad input.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_success, cfg, kestrel, path_str, run_python};
use kestrel::prune::{load_net, masked_random_net, write_weights, Header, Layer};

/// Writes random masked weights for `cfg_text` (see `masked_random_net`).
fn masked_weights(cfg_text: &str, out: &Path, seed: u64, zero_frac: impl Fn(usize) -> f32) {
    let net = masked_random_net(cfg_text, "test.cfg", seed, zero_frac).unwrap();
    let header = Header {
        major: 0,
        minor: 2,
        revision: 5,
        seen: 0,
    };
    write_weights(out, &net, header).unwrap();
}

const YOLO: &str = "[yolo]\nmask = {m}\nanchors = 10,13, 16,30, 33,23, 30,61, 62,45, 59,119, 116,90, 156,198, 373,326\nclasses=10\nnum=9\n";

fn conv(filters: usize, size: usize, stride: usize, bn: bool) -> String {
    let (b, act) = if bn {
        ("batch_normalize=1\n", "leaky")
    } else {
        ("", "linear")
    };
    format!("[convolutional]\n{b}filters={filters}\nsize={size}\nstride={stride}\npad=1\nactivation={act}\n")
}

/// A small two-head network with every wiring SlimYOLOv3 meets: stride-2 convs, shortcut
/// chains, the SPP maxpool ×4 route, upsample + route to an earlier layer, detection convs.
/// `k` is the kernel of the convs that consume pruned channels (1 = exact folding).
fn small_cfg(k: usize) -> String {
    let spp = "[maxpool]\nsize=5\nstride=1\n[route]\nlayers=-2\n[maxpool]\nsize=9\nstride=1\n[route]\nlayers=-4\n[maxpool]\nsize=13\nstride=1\n[route]\nlayers=-1,-3,-5,-6\n";
    [
        "[net]\nbatch=1\nwidth=64\nheight=64\nchannels=3\n".to_string(),
        conv(16, 3, 1, true),                              // 0
        conv(32, 1, 2, true),                              // 1 chain start
        conv(16, 1, 1, true),                              // 2
        conv(32, k, 1, true),                              // 3
        "[shortcut]\nfrom=-3\nactivation=linear\n".into(), // 4
        conv(16, 1, 1, true),                              // 5
        conv(32, k, 1, true),                              // 6
        "[shortcut]\nfrom=-3\nactivation=linear\n".into(), // 7
        conv(64, k, 2, true),                              // 8
        conv(32, 1, 1, true),                              // 9
        spp.into(),                                        // 10..15
        conv(32, 1, 1, true),                              // 16
        conv(45, 1, 1, false),                             // 17
        YOLO.replace("{m}", "6,7,8"),                      // 18
        "[route]\nlayers=-4\n".into(),                     // 19
        conv(16, 1, 1, true),                              // 20
        "[upsample]\nstride=2\n".into(),                   // 21
        "[route]\nlayers=-1, 7\n".into(),                  // 22
        conv(32, k, 1, true),                              // 23
        conv(45, 1, 1, false),                             // 24
        YOLO.replace("{m}", "0,1,2"),                      // 25
    ]
    .concat()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn prune_cli(
    cfg: &Path,
    w: &Path,
    dir: &Path,
    tag: &str,
    extra: &[&str],
) -> (PathBuf, PathBuf, String) {
    let (pc, pw) = (
        dir.join(format!("{tag}.cfg")),
        dir.join(format!("{tag}.weights")),
    );
    let out = kestrel()
        .args(["prune", "--cfg", path_str(cfg), "--weights", path_str(w)])
        .args(["--out-cfg", path_str(&pc), "--out-weights", path_str(&pw)])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "prune failed: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    (pc, pw, stdout)
}

/// Differences of one head's raw output between the masked and a pruned model.
#[derive(Debug)]
#[allow(dead_code)]
struct Diff {
    max: f64,
    mean: f64,
    ref_max: f64,
}

/// The same differences computed by Kestrel's own forward (model::Darknet on CPU).
fn kestrel_diff(cfg: &Path, w: &Path, pc: &Path, pw: &Path, size: usize) -> Vec<Diff> {
    use candle_core::{Device, Tensor};
    let mut rng = 12345u64;
    let data: Vec<f32> = (0..3 * size * size)
        .map(|_| {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((rng >> 40) as f32) / (1u64 << 24) as f32
        })
        .collect();
    let x = Tensor::from_vec(data, (1, 3, size, size), &Device::Cpu).unwrap();
    let run = |c: &Path, w: &Path| -> Vec<Vec<f32>> {
        let net = kestrel::model::Darknet::load(c, w, &Device::Cpu).unwrap();
        let heads = net.forward(&x).unwrap();
        heads
            .iter()
            .map(|h| h.raw.flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    };
    let (a, b) = (run(cfg, w), run(pc, pw));
    a.iter()
        .zip(&b)
        .map(|(a, b)| {
            assert_eq!(a.len(), b.len());
            let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).collect();
            Diff {
                max: d.iter().copied().fold(0.0, f64::max),
                mean: d.iter().sum::<f64>() / d.len() as f64,
                ref_max: a.iter().map(|v| v.abs() as f64).fold(0.0, f64::max),
            }
        })
        .collect()
}

/// Max |diff| per head between the masked model and a pruned one, computed by OpenCV DNN.
fn opencv_diff(cfg: &Path, w: &Path, pc: &Path, pw: &Path, size: usize) -> Vec<Diff> {
    let out = run_python(
        "prune_forward.py",
        &[
            path_str(cfg),
            path_str(w),
            path_str(pc),
            path_str(pw),
            &size.to_string(),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Diff {
            max: h["max_abs_diff"].as_f64().unwrap(),
            mean: h["mean_abs_diff"].as_f64().unwrap(),
            ref_max: h["max_abs_ref"].as_f64().unwrap(),
        })
        .collect()
}

fn setup(k: usize, dir: &Path) -> (PathBuf, PathBuf) {
    let (c, w) = (dir.join("masked.cfg"), dir.join("masked.weights"));
    let text = small_cfg(k);
    std::fs::write(&c, &text).unwrap();
    masked_weights(&text, &w, 7, |_| 0.4);
    (c, w)
}

#[test]
fn folded_pruning_equals_masked_model_through_pointwise_consumers() {
    let dir = tmp();
    let (c, w) = setup(1, dir.path());
    let (pc, pw, _) = prune_cli(&c, &w, dir.path(), "fold", &["--ratio", "0.3"]);
    let (qc, qw, _) = prune_cli(
        &c,
        &w,
        dir.path(),
        "nofold",
        &["--ratio", "0.3", "--no-fold-beta"],
    );
    let before = load_net(&c, &w).unwrap().0;
    let after = load_net(&pc, &pw).unwrap().0;
    assert!(after.params.iter().flatten().count() == before.params.iter().flatten().count());
    assert!(
        kestrel::prune::params_and_bflops(&after).0
            < kestrel::prune::params_and_bflops(&before).0 * 3 / 4
    );
    for (peer, diff) in [("OpenCV", opencv_diff as DiffFn), ("Kestrel", kestrel_diff)] {
        let fold = diff(&c, &w, &pc, &pw, 64);
        let nofold = diff(&c, &w, &qc, &qw, 64);
        println!("pointwise, {peer}: per head, folded {fold:?}, not folded {nofold:?}");
        check_exact(&fold, &nofold);
    }
}

type DiffFn = fn(&Path, &Path, &Path, &Path, usize) -> Vec<Diff>;

fn check_exact(fold: &[Diff], nofold: &[Diff]) {
    for (f, n) in fold.iter().zip(nofold) {
        assert!(f.max <= 1e-4, "folded diff {f:?}");
        assert!(
            n.max > 1e-2,
            "without folding the outputs should differ: {n:?}"
        );
    }
}

#[test]
fn folding_leaves_only_border_error_with_3x3_consumers() {
    let dir = tmp();
    let (c, w) = setup(3, dir.path());
    let (pc, pw, _) = prune_cli(
        &c,
        &w,
        dir.path(),
        "fold",
        &["--ratio", "0.3", "--fold-beta"],
    );
    let (qc, qw, _) = prune_cli(
        &c,
        &w,
        dir.path(),
        "nofold",
        &["--ratio", "0.3", "--no-fold-beta"],
    );
    for (peer, diff) in [("OpenCV", opencv_diff as DiffFn), ("Kestrel", kestrel_diff)] {
        let fold = diff(&c, &w, &pc, &pw, 64);
        let nofold = diff(&c, &w, &qc, &qw, 64);
        println!("3x3 consumers, {peer}: per head, folded {fold:?}, not folded {nofold:?}");
        check_border_only(&fold, &nofold);
    }
}

fn check_border_only(fold: &[Diff], nofold: &[Diff]) {
    for (f, n) in fold.iter().zip(nofold) {
        assert!(
            f.mean < 0.1 * n.mean,
            "folded mean error not far below unfolded: {f:?} vs {n:?}"
        );
        assert!(
            f.max < n.max,
            "folded max error not below unfolded: {f:?} vs {n:?}"
        );
    }
}

/// Indices of `orig` values found in `kept` (random BN variances, untouched by folding, identify
/// channels).
fn kept_indices(orig: &[f32], kept: &[f32]) -> Vec<usize> {
    kept.iter()
        .map(|k| {
            orig.iter()
                .position(|o| o.to_bits() == k.to_bits())
                .expect("kept variance not in original")
        })
        .collect()
}

#[test]
fn slimyolo_pruning_of_spp3_keeps_floor_and_shortcut_unions_and_loads_in_opencv() {
    let dir = tmp();
    let c = cfg("yolov3-spp3.cfg");
    let w = dir.path().join("random-spp3.weights");
    let text = std::fs::read_to_string(&c).unwrap();
    // Every 7th layer almost fully sparse (exercises the 10 % floor), the rest half sparse.
    masked_weights(&text, &w, 11, |i| if i % 7 == 0 { 0.97 } else { 0.5 });
    let json = dir.path().join("report.json");
    let hist = dir.path().join("hist.png");
    let args = [
        "--ratio",
        "0.5",
        "--min-keep",
        "0.1",
        "--json",
        path_str(&json),
        "--hist",
        path_str(&hist),
    ];
    let (pc, pw, stdout) = prune_cli(&c, &w, dir.path(), "spp3", &args);
    println!("{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let thresh = report["passes"][0]["threshold"].as_f64().unwrap() as f32;

    let (before, _) = load_net(&c, &w).unwrap();
    let (after, _) = load_net(&pc, &pw).unwrap();
    // The JSON's kept table lists all 73 BN convs with the widths the written cfg has.
    let kept_json = report["passes"][0]["kept"].as_array().unwrap();
    assert_eq!(kept_json.len(), 73);
    for k in kept_json {
        let l = k["layer"].as_u64().unwrap() as usize;
        assert_eq!(
            k["after"].as_u64().unwrap() as usize,
            after.widths[l],
            "layer {l}"
        );
    }
    // Params in the report = floats in the written file (20-byte header).
    let file_params = (std::fs::metadata(&pw).unwrap().len() - 20) / 4;
    assert_eq!(report["params_after"].as_u64().unwrap(), file_params);
    // Only filters change; [net] is verbatim.
    let (orig_lines, new_text) = (text.lines().count(), std::fs::read_to_string(&pc).unwrap());
    assert_eq!(orig_lines, new_text.lines().count());
    for (a, b) in text.lines().zip(new_text.lines()) {
        assert!(
            a == b || (a.starts_with("filters") && b.starts_with("filters")),
            "{a} -> {b}"
        );
    }

    let kept: Vec<Option<Vec<usize>>> = before
        .params
        .iter()
        .zip(&after.params)
        .map(|(b, a)| {
            Some(kept_indices(
                &b.as_ref()?.bn.as_ref()?.var,
                &a.as_ref()?.bn.as_ref()?.var,
            ))
        })
        .collect();
    for (i, (b, a)) in before.params.iter().zip(&after.params).enumerate() {
        let (Some(b), Some(a)) = (b, a) else { continue };
        match &b.bn {
            Some(bn) => {
                let floor = ((b.out as f64 * 0.1) as usize).max(1);
                let strong = bn.gamma.iter().filter(|g| g.abs() > thresh).count();
                assert!(
                    a.out >= floor.min(b.out),
                    "layer {i}: {} < floor {floor}",
                    a.out
                );
                assert!(a.out >= strong.min(a.out), "layer {i}");
            }
            None => assert_eq!(a.out, b.out, "detection conv {i} must keep its outputs"),
        }
    }
    // Shortcut unions: both inputs of every shortcut keep the same channel set, which contains
    // every channel above the threshold in either producer.
    for (i, l) in before.layers.iter().enumerate() {
        let Layer::Shortcut { from } = l else {
            continue;
        };
        let src = |mut j: usize| {
            while !matches!(before.layers[j], Layer::Conv(_)) {
                j -= 1;
            }
            j
        };
        let (x, y) = (src(i - 1), src(*from));
        assert_eq!(
            kept[x], kept[y],
            "shortcut {i}: convs {x} and {y} keep different channels"
        );
        for conv in [x, y] {
            let g = &before.params[conv]
                .as_ref()
                .unwrap()
                .bn
                .as_ref()
                .unwrap()
                .gamma;
            for (ch, gv) in g.iter().enumerate() {
                if gv.abs() > thresh {
                    assert!(
                        kept[x].as_ref().unwrap().contains(&ch),
                        "shortcut {i}: channel {ch} of {conv} lost"
                    );
                }
            }
        }
    }
    // Params and BFLOPs agree with `kestrel info` on the written cfg (the engine's own summary).
    for (cfg_file, p, f) in [
        (&c, "params_before", "bflops_before"),
        (&pc, "params_after", "bflops_after"),
    ] {
        let out = kestrel()
            .args(["info", "--json", "--cfg", path_str(cfg_file)])
            .output()
            .unwrap();
        assert_success(&out);
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(info["total_params"], report[p], "{p}");
        let (a, b) = (
            info["total_bflops"].as_f64().unwrap(),
            report[f].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-6 * a, "{f}: info {a} vs prune {b}");
    }
    assert!(image::open(&hist).unwrap().width() > 100);
    let out = run_python(
        "prune_forward.py",
        &["--load", path_str(&pc), path_str(&pw), "160"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let shapes = v["shapes"].to_string();
    assert_eq!(
        shapes, "[[1,45,5,5],[1,45,10,10],[1,45,20,20]]",
        "OpenCV heads: {out}"
    );
}

fn kestrel_err(args: &[&str]) -> String {
    let out = kestrel().args(args).output().unwrap();
    assert!(!out.status.success(), "expected failure for {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = tmp();
    let (c, w) = setup(1, dir.path());
    let out = dir.path().join("o");
    let base = |cfg: &Path, wt: &Path, ratio: &str| -> Vec<String> {
        ["prune", "--cfg", path_str(cfg), "--weights", path_str(wt)]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("--ratio={ratio}")])
            .chain([
                "--out-cfg".into(),
                format!("{}.cfg", out.display()),
                "--out-weights".into(),
                format!("{}.w", out.display()),
            ])
            .collect()
    };
    let run = |a: Vec<String>| kestrel_err(&a.iter().map(String::as_str).collect::<Vec<_>>());
    for r in ["0", "1", "1.5", "-0.2"] {
        let e = run(base(&c, &w, r));
        assert!(e.contains("--ratio") && e.contains("(0, 1)"), "{e}");
    }
    // Real COCO tiny weights (80 classes) against the 10-class VisDrone tiny cfg.
    let tiny_w = common::asset("yolov3-tiny.weights");
    let e = run(base(&cfg("yolov3-tiny.cfg"), &tiny_w, "0.5"));
    assert!(
        e.contains("yolov3-tiny.weights") && e.contains("do not match the cfg"),
        "{e}"
    );
    // A cfg without batch norm.
    let nobn = dir.path().join("nobn.cfg");
    let text = small_cfg(1).replace("batch_normalize=1\n", "");
    std::fs::write(&nobn, &text).unwrap();
    let nobn_w = dir.path().join("nobn.weights");
    masked_weights(&text, &nobn_w, 1, |_| 0.0);
    let e = run(base(&nobn, &nobn_w, "0.5"));
    assert!(
        e.contains("nobn.cfg") && e.contains("batch_normalize=1"),
        "{e}"
    );
    // A broken cfg names file and line.
    let bad = dir.path().join("bad.cfg");
    std::fs::write(&bad, "[net]\nwidth=64\nheight=64\n[route]\nlayers=-5\n").unwrap();
    let e = run(base(&bad, &w, "0.5"));
    assert!(e.contains("bad.cfg:5"), "{e}");
}

#[test]
fn real_tiny_weights_prune_and_run_in_opencv_and_sparsity_reports() {
    let dir = tmp();
    let (c, w) = (
        common::asset("yolov3-tiny.cfg"),
        common::asset("yolov3-tiny.weights"),
    );
    let (pc, pw, stdout) = prune_cli(
        &c,
        &w,
        dir.path(),
        "tiny",
        &["--ratio", "0.3", "--ratio", "0.3"],
    );
    assert!(stdout.contains("pass 2"), "{stdout}");
    let out = run_python(
        "prune_forward.py",
        &["--load", path_str(&pc), path_str(&pw), "128"],
    );
    assert!(
        out.contains("[1, 255, 4, 4]") && out.contains("[1, 255, 8, 8]"),
        "{out}"
    );
    let out = kestrel()
        .args(["sparsity", "--cfg", path_str(&c), "--weights", path_str(&w)])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && s.contains("BN channels in 11 convs")
            && s.contains("quantile 0.50"),
        "{s}"
    );
}
