//! Benchmark: scoring a VisDrone-DET-train sized set (6,471 images × 500 detections, ~60 GT and 2
//! ignored regions per image) with `--protocol visdrone` and `--protocol coco`, plus parsing the
//! result files' text. Prints times, asserts none. `cargo bench --bench eval [-- N]`.

use std::path::Path;
use std::time::Instant;

use kestrel::eval::{bench, coco, dataset::parse_det_text, results::format_results, visdrone};

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(6471);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = Instant::now();
    let images = bench::synthetic_images(n, 500);
    println!(
        "eval bench: {n} images x 500 detections, {threads} threads; generated in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let texts: Vec<String> = images.iter().map(|i| format_results(&i.det)).collect();
    let t = Instant::now();
    let mut lines = 0;
    for text in &texts {
        lines += parse_det_text(text, Path::new("bench.txt"))
            .expect("own text")
            .len();
    }
    println!(
        "parse result text ({lines} lines): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    drop(texts);

    let copy = images.clone();
    let t = Instant::now();
    let res = visdrone::evaluate(copy);
    println!(
        "score --protocol visdrone: {:.2} s (AP {:.4})",
        t.elapsed().as_secs_f64(),
        res.summary.ap
    );
    let t = Instant::now();
    let res = coco::evaluate(images);
    println!(
        "score --protocol coco:     {:.2} s (AP {:.4})",
        t.elapsed().as_secs_f64(),
        res.summary.ap
    );
}
