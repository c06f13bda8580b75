//! `kestrel info` totals vs Darknet's published counts (BFLOPs, parameters, `.weights` sizes);
//! the sizes are facts of the cfgs (shared/notes/slimyolo.md §2) and of the real COCO file.

mod common;

use kestrel::model::{expected_file_size, param_count, Cfg, DarknetWeights};

fn info_json(cfg: &str, size: usize) -> serde_json::Value {
    let path = common::cfg(cfg);
    let out = common::kestrel()
        .args([
            "info",
            "--json",
            "--size",
            &size.to_string(),
            "--cfg",
            common::path_str(&path),
        ])
        .output()
        .expect("kestrel runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("info --json is JSON")
}

#[test]
fn bflops_at_416_match_darknet() {
    for (cfg, want) in [
        ("darknet/yolov3-tiny.cfg", 5.56),
        ("yolov3-spp3.cfg", 71.03),
        ("prune_0.95.cfg", 6.57),
    ] {
        let v = info_json(cfg, 416);
        let got = v["total_bflops"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 0.01,
            "{cfg}: {got} BFLOPs, Darknet says {want}"
        );
    }
    // Table text mode prints the same total.
    let path = common::cfg("yolov3-spp3.cfg");
    let out = common::kestrel()
        .args(["info", "--size", "416", "--cfg", common::path_str(&path)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("71.03 BFLOPs"), "{text}");
    assert!(text.lines().count() > 126, "per-layer rows expected");
}

#[test]
fn params_and_weights_sizes_of_every_committed_cfg() {
    let table = [
        ("yolov3-spp3.cfg", 126, 63_953_383, 255_813_552),
        ("yolov3-spp1.cfg", 114, 62_675_431, 250_701_744),
        ("yolov3.cfg", 107, 61_624_807, 246_499_248),
        ("yolov3-tiny.cfg", 24, 8_697_034, 34_788_156),
        ("prune_0.5.cfg", 126, 33_404_768, 133_619_092),
        ("prune_0.5_0.5.cfg", 126, 20_872_440, 83_489_780),
        ("prune_0.5_0.5_0.7.cfg", 126, 11_114_504, 44_458_036),
        ("prune_0.9.cfg", 126, 8_047_311, 32_189_264),
        ("prune_0.95.cfg", 126, 5_101_649, 20_406_616),
        ("darknet/yolov3-spp.cfg", 114, 63_052_381, 252_209_544),
        ("darknet/yolov3-tiny.cfg", 24, 8_858_734, 35_434_956),
    ];
    for (name, layers, params, bytes) in table {
        let cfg = Cfg::parse_file(&common::cfg(name)).unwrap();
        assert_eq!(cfg.layers.len(), layers, "{name} layers");
        assert_eq!(param_count(&cfg).unwrap(), params, "{name} params");
        assert_eq!(
            expected_file_size(&cfg).unwrap(),
            bytes,
            "{name} .weights bytes"
        );
    }
    let v = info_json("prune_0.9.cfg", 608);
    assert_eq!(v["total_params"].as_u64(), Some(8_047_311));
    assert_eq!(v["weights_bytes"].as_u64(), Some(32_189_264));
}

#[test]
fn real_tiny_weights_size_is_the_prediction_and_round_trips() {
    let cfg = Cfg::parse_file(&common::asset("yolov3-tiny.cfg")).unwrap();
    let path = common::asset("yolov3-tiny.weights");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, expected_file_size(&cfg).unwrap());
    let w = DarknetWeights::read(&path, &cfg).unwrap();
    assert_eq!(w.convs.len(), 13);
    assert_eq!((w.header.major, w.header.minor), (0, 2));
    assert!(w.to_bytes() == bytes, "write-back is not byte-identical");
}
