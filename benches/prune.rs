//! Benchmark: `kestrel prune` on yolov3-spp3 (63.9 M params) end to end, SlimYOLOv3 parameters
//! (ratio 0.5, min-keep 0.1, β folding on), on synthetic masked weights (half the γ zero).
//! Prints wall time and the peak memory `kestrel prune` reports. `cargo bench --bench prune`.

use std::process::Command;
use std::time::Instant;

use kestrel::prune::{masked_random_net, write_weights, Header};

fn main() {
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/models/cfg/yolov3-spp3.cfg");
    let dir = tempfile::tempdir().expect("temp dir");
    let weights = dir.path().join("spp3-masked.weights");
    let text = std::fs::read_to_string(cfg).expect("models/cfg/yolov3-spp3.cfg");
    let t = Instant::now();
    let net = masked_random_net(&text, cfg, 1, |_| 0.5).expect("synthetic SPP3");
    let header = Header {
        major: 0,
        minor: 2,
        revision: 5,
        seen: 0,
    };
    write_weights(&weights, &net, header).expect("write weights");
    drop(net);
    println!(
        "synthetic SPP3 weights written in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    for ratios in [&["0.5"][..], &["0.5", "0.5", "0.7"][..]] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kestrel"));
        cmd.args(["prune", "--cfg", cfg, "--weights"]).arg(&weights);
        for r in ratios {
            cmd.args(["--ratio", r]);
        }
        cmd.arg("--out-cfg").arg(dir.path().join("p.cfg"));
        cmd.arg("--out-weights").arg(dir.path().join("p.weights"));
        let t = Instant::now();
        let out = cmd.output().expect("run kestrel prune");
        let wall = t.elapsed().as_secs_f64();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "prune --ratio {}: process wall {wall:.2} s",
            ratios.join(" --ratio ")
        );
        for line in stdout
            .lines()
            .filter(|l| l.starts_with("params") || l.starts_with("pruned"))
        {
            println!("  {line}");
        }
    }
}
