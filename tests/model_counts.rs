//! `kestrel info` totals against Darknet's own conventions and published figures
//! (shared/notes/slimyolo.md §2 and §5: the paper's BFLOPs, the published .weights sizes).

mod common;
use common::*;

fn info(cfg_name: &str, size: usize) -> serde_json::Value {
    let out = kestrel()
        .args([
            "info",
            "--json",
            "--size",
            &size.to_string(),
            "--cfg",
            path_str(&cfg(cfg_name)),
        ])
        .output()
        .unwrap();
    assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bflops_match_darknet_and_the_paper() {
    for (name, bflops) in [
        ("darknet/yolov3-tiny.cfg", 5.56),
        ("yolov3-spp3.cfg", 71.03),
        ("prune_0.95.cfg", 6.57),
        ("prune_0.5_0.5.cfg", 30.51),
        ("prune_0.9.cfg", 9.97),
    ] {
        let got = info(name, 416)["total_bflops"].as_f64().unwrap();
        assert!(
            (got - bflops).abs() <= 0.01,
            "{name}: {got} BFLOPs, Darknet says {bflops}"
        );
    }
    let at608 = info("yolov3-spp3.cfg", 608)["total_bflops"]
        .as_f64()
        .unwrap();
    assert!((at608 - 151.72).abs() <= 0.01, "spp3 @608: {at608}");
}

#[test]
fn parameter_counts_and_weights_sizes_match_the_cfgs() {
    // (cfg, float32 parameters, .weights bytes with a 20-byte header)
    let table = [
        ("yolov3-spp3.cfg", 63_953_383u64, 255_813_552u64),
        ("yolov3-spp1.cfg", 62_675_431, 250_701_744),
        ("yolov3.cfg", 61_624_807, 246_499_248),
        ("yolov3-tiny.cfg", 8_697_034, 34_788_156),
        ("prune_0.5.cfg", 33_404_768, 133_619_092),
        ("prune_0.5_0.5.cfg", 20_872_440, 83_489_780),
        ("prune_0.5_0.5_0.7.cfg", 11_114_504, 44_458_036),
        ("prune_0.9.cfg", 8_047_311, 32_189_264),
        ("prune_0.95.cfg", 5_101_649, 20_406_616),
        ("darknet/yolov3-spp.cfg", 63_052_381, 252_209_544),
        ("darknet/yolov3-tiny.cfg", 8_858_734, 35_434_956),
    ];
    for (name, params, bytes) in table {
        let j = info(name, 416);
        assert_eq!(j["total_params"].as_u64().unwrap(), params, "{name} params");
        assert_eq!(
            j["weights_bytes"].as_u64().unwrap(),
            bytes,
            "{name} .weights size"
        );
    }
}

#[test]
fn the_real_weights_file_has_the_predicted_size_and_loads() {
    let predicted = info("darknet/yolov3-tiny.cfg", 416)["weights_bytes"]
        .as_u64()
        .unwrap();
    let actual = std::fs::metadata(asset("yolov3-tiny.weights"))
        .unwrap()
        .len();
    assert_eq!(predicted, actual);
    let cfg = kestrel::model::Cfg::parse_file(&asset("yolov3-tiny.cfg")).unwrap();
    let w = kestrel::model::DarknetWeights::read(&asset("yolov3-tiny.weights"), &cfg).unwrap();
    // Writing it back reproduces the official file byte for byte.
    assert_eq!(
        w.to_bytes(),
        std::fs::read(asset("yolov3-tiny.weights")).unwrap()
    );
}
