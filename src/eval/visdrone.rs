//! The official VisDrone2018-DET toolkit's accumulation (`calcAccuracy`): maxDets = the first k
//! lines of each image's result list, all classes together; nGT counts ignore-flagged GT; VOC
//! all-point AP; classes averaged with one weight per image that contains them.

use super::ignore::drop_in_ignored;
use super::matching::{match_greedy, overlap, voc_ap, FP, TP};
use super::{ImageRecord, Row};

/// The toolkit's maxDets, in the order AR1, AR10, AR100, AR500.
pub const MAX_DETS: [usize; 4] = [1, 10, 100, 500];
/// Number of IoU thresholds (0.50 … 0.95).
pub const N_THR: usize = 10;

/// IoU threshold `k` as Octave's `0.5:0.05:0.95` computes it (`0.5 + k·0.05`).
pub fn visdrone_threshold(k: usize) -> f64 {
    0.5 + k as f64 * 0.05
}

/// The seven headline numbers, as fractions (the toolkit prints them ×100).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    #[serde(rename = "AP")]
    pub ap: f64,
    #[serde(rename = "AP50")]
    pub ap50: f64,
    #[serde(rename = "AP75")]
    pub ap75: f64,
    #[serde(rename = "AR1")]
    pub ar1: f64,
    #[serde(rename = "AR10")]
    pub ar10: f64,
    #[serde(rename = "AR100")]
    pub ar100: f64,
    #[serde(rename = "AR500")]
    pub ar500: f64,
}

/// One class's results.
#[derive(Debug, Clone, Default)]
pub struct ClassResult {
    /// VisDrone id 1..10.
    pub class_id: i64,
    /// Images whose GT (after region removal) has this class: its weight in the average.
    pub images: usize,
    pub n_gt: usize,
    pub ap: [f64; N_THR],
    pub ar: [[f64; 4]; N_THR],
    /// Recall / precision at IoU 0.5 (maxDets 500), thinned for plotting.
    pub pr_curve: Vec<(f64, f64)>,
}

impl ClassResult {
    pub fn summary(&self) -> Summary {
        let mean = |f: &dyn Fn(usize) -> f64| (0..N_THR).map(f).sum::<f64>() / N_THR as f64;
        Summary {
            ap: mean(&|t| self.ap[t]),
            ap50: self.ap[0],
            ap75: self.ap[5],
            ar1: mean(&|t| self.ar[t][0]),
            ar10: mean(&|t| self.ar[t][1]),
            ar100: mean(&|t| self.ar[t][2]),
            ar500: mean(&|t| self.ar[t][3]),
        }
    }
}

/// Full result: the image-weighted average and every class with GT.
#[derive(Debug, Clone, Default)]
pub struct VisdroneResult {
    pub summary: Summary,
    pub classes: Vec<ClassResult>,
    /// COCO mode only: AP small, medium, large (maxDets 500); −1 where a range has no GT.
    pub areas: Option<[f64; 3]>,
}

/// Matches of one class, accumulated over images in listing order.
#[derive(Debug, Clone, Default)]
struct ClassAcc {
    scores: Vec<f64>,
    flags: [Vec<i8>; N_THR],
    tp: [[usize; 4]; N_THR],
    n_gt: usize,
    images: usize,
}

impl ClassAcc {
    fn append(&mut self, other: ClassAcc) {
        self.scores.extend(other.scores);
        for (a, b) in self.flags.iter_mut().zip(other.flags) {
            a.extend(b);
        }
        for t in 0..N_THR {
            for k in 0..4 {
                self.tp[t][k] += other.tp[t][k];
            }
        }
        self.n_gt += other.n_gt;
        self.images += other.images;
    }
}

/// Scratch buffers reused across images.
#[derive(Default)]
struct Scratch {
    gt: Vec<[f64; 4]>,
    det: Vec<(usize, f64, [f64; 4])>,
    oa: Vec<f64>,
    active: Vec<usize>,
    taken: Vec<bool>,
    flags: Vec<i8>,
}

fn xywh(r: &Row) -> [f64; 4] {
    [r.x, r.y, r.w, r.h]
}

/// Which toolkit's rules: they differ in what maxDets counts and what a class's weight counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// VisDrone2018-DET: maxDets = the first k lines of an image, all classes together.
    Det,
    /// VisDrone2018-VID: maxDets = the first k lines of one class in one frame.
    Vid,
}

/// Matches one image's rows of class `c` at every threshold and maxDets.
fn add_image_class(img: &ImageRecord, c: i64, rules: Rules, acc: &mut ClassAcc, s: &mut Scratch) {
    s.gt.clear();
    // The toolkit flips the GT score into an ignore flag and sorts normal GT first (stable).
    s.gt.extend(
        img.gt
            .iter()
            .filter(|r| r.category == c && r.score != 0.0)
            .map(xywh),
    );
    let n_normal = s.gt.len();
    s.gt.extend(
        img.gt
            .iter()
            .filter(|r| r.category == c && r.score == 0.0)
            .map(xywh),
    );
    if !s.gt.is_empty() {
        acc.images += 1;
    }
    acc.n_gt += s.gt.len();
    s.det.clear();
    match rules {
        Rules::Det => {
            let n = img.det.len().min(MAX_DETS[3]);
            s.det.extend(
                img.det[..n]
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.category == c)
                    .map(|(i, r)| (i, r.score, xywh(r))),
            );
        }
        Rules::Vid => s.det.extend(
            img.det
                .iter()
                .filter(|r| r.category == c)
                .take(MAX_DETS[3])
                .enumerate()
                .map(|(i, r)| (i, r.score, xywh(r))),
        ),
    }
    if s.det.is_empty() {
        return;
    }
    s.det.sort_by(|a, b| b.1.total_cmp(&a.1));
    let ng = s.gt.len();
    s.oa.clear();
    for (_, _, d) in &s.det {
        for (g, gt) in s.gt.iter().enumerate() {
            s.oa.push(overlap(*d, *gt, g >= n_normal));
        }
    }
    acc.scores.extend(s.det.iter().map(|d| d.1));
    for (k, &max_dets) in MAX_DETS.iter().enumerate() {
        s.active.clear();
        s.active
            .extend((0..s.det.len()).filter(|&j| s.det[j].0 < max_dets));
        if s.active.is_empty() {
            continue;
        }
        for t in 0..N_THR {
            let thr = visdrone_threshold(t);
            match_greedy(
                &s.oa,
                ng,
                n_normal,
                &s.active,
                thr,
                &mut s.taken,
                &mut s.flags,
            );
            acc.tp[t][k] += s.flags.iter().filter(|&&f| f == TP).count();
            if k == 3 {
                acc.flags[t].extend_from_slice(&s.flags);
            }
        }
    }
}

fn accumulate(images: &[ImageRecord], rules: Rules) -> Vec<ClassAcc> {
    let mut accs: Vec<ClassAcc> = (0..10).map(|_| ClassAcc::default()).collect();
    let mut scratch = Scratch::default();
    for img in images {
        for (ci, acc) in accs.iter_mut().enumerate() {
            add_image_class(img, ci as i64 + 1, rules, acc, &mut scratch);
        }
    }
    accs
}

/// Accumulation split over threads by contiguous image ranges, merged back in listing order.
fn accumulate_parallel(images: &[ImageRecord], rules: Rules) -> Vec<ClassAcc> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 || images.len() < 64 {
        return accumulate(images, rules);
    }
    let chunk = images.len().div_ceil(threads);
    let parts: Vec<Vec<ClassAcc>> = std::thread::scope(|scope| {
        let handles: Vec<_> = images
            .chunks(chunk)
            .map(|part| scope.spawn(move || accumulate(part, rules)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut merged: Vec<ClassAcc> = (0..10).map(|_| ClassAcc::default()).collect();
    for part in parts {
        for (m, p) in merged.iter_mut().zip(part) {
            m.append(p);
        }
    }
    merged
}

fn thin(rec: &[f64], prec: &[f64], max_points: usize) -> Vec<(f64, f64)> {
    let step = rec.len().div_ceil(max_points).max(1);
    let mut pts: Vec<(f64, f64)> = rec
        .iter()
        .zip(prec)
        .step_by(step)
        .map(|(&r, &p)| (r, p))
        .collect();
    if let (Some(&r), Some(&p)) = (rec.last(), prec.last()) {
        pts.push((r, p));
    }
    pts
}

fn finish_class(class_id: i64, acc: &ClassAcc) -> ClassResult {
    let mut order: Vec<usize> = (0..acc.scores.len()).collect();
    // Stable: ties keep image order, then the per-image score order.
    order.sort_by(|&a, &b| acc.scores[b].total_cmp(&acc.scores[a]));
    let denom = acc.n_gt.max(1) as f64;
    let mut res = ClassResult {
        class_id,
        images: acc.images,
        n_gt: acc.n_gt,
        ..Default::default()
    };
    let (mut rec, mut prec) = (
        Vec::with_capacity(order.len()),
        Vec::with_capacity(order.len()),
    );
    for t in 0..N_THR {
        for k in 0..4 {
            res.ar[t][k] = acc.tp[t][k] as f64 / denom;
        }
        rec.clear();
        prec.clear();
        let (mut tp, mut fp) = (0usize, 0usize);
        for &i in &order {
            match acc.flags[t][i] {
                TP => tp += 1,
                FP => fp += 1,
                _ => {}
            }
            rec.push(tp as f64 / denom);
            prec.push(tp as f64 / (tp + fp).max(1) as f64);
        }
        res.ap[t] = voc_ap(&rec, &prec);
        if t == 0 {
            res.pr_curve = thin(&rec, &prec, 2000);
        }
    }
    res
}

/// Weighted mean over classes, each counted once per image containing it (the toolkit's `mean2`
/// over `AP(evalClass, :)`).
fn weighted(classes: &[ClassResult], f: impl Fn(&Summary) -> f64) -> f64 {
    let total: usize = classes.iter().map(|c| c.images).sum();
    if total == 0 {
        return 0.0;
    }
    classes
        .iter()
        .map(|c| c.images as f64 * f(&c.summary()))
        .sum::<f64>()
        / total as f64
}

/// Scores images whose `gt`/`det` are as read from the files (region removal is applied here).
pub fn evaluate(mut images: Vec<ImageRecord>) -> VisdroneResult {
    let _span = tracing::info_span!("visdrone_eval", images = images.len()).entered();
    for img in &mut images {
        drop_in_ignored(img);
    }
    evaluate_prepared(&images)
}

/// Scores images whose regions were already removed (DET rules).
pub fn evaluate_prepared(images: &[ImageRecord]) -> VisdroneResult {
    evaluate_units(images, Rules::Det, None)
}

/// Scores evaluated units (DET images or VID frames, regions already removed) in listing order.
/// `weights[c − 1]` replaces the count of units containing class c as its weight (VID: sequences).
pub fn evaluate_units(
    units: &[ImageRecord],
    rules: Rules,
    weights: Option<&[usize; 10]>,
) -> VisdroneResult {
    let mut accs = accumulate_parallel(units, rules);
    if let Some(w) = weights {
        for (acc, &n) in accs.iter_mut().zip(w) {
            acc.images = n;
        }
    }
    let classes: Vec<ClassResult> = accs
        .iter()
        .enumerate()
        .filter(|(_, a)| a.images > 0)
        .map(|(ci, a)| finish_class(ci as i64 + 1, a))
        .collect();
    let summary = Summary {
        ap: weighted(&classes, |s| s.ap),
        ap50: weighted(&classes, |s| s.ap50),
        ap75: weighted(&classes, |s| s.ap75),
        ar1: weighted(&classes, |s| s.ar1),
        ar10: weighted(&classes, |s| s.ar10),
        ar100: weighted(&classes, |s| s.ar100),
        ar500: weighted(&classes, |s| s.ar500),
    };
    VisdroneResult {
        summary,
        classes,
        areas: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The threaded path (≥ 64 images, merged in listing order) gives bit-identical results.
    #[test]
    fn parallel_accumulation_equals_sequential() {
        let mut images = crate::eval::bench::synthetic_images(80, 60);
        for img in &mut images {
            drop_in_ignored(img);
        }
        for rules in [Rules::Det, Rules::Vid] {
            let a = accumulate(&images, rules);
            let b = accumulate_parallel(&images, rules);
            for (ci, (a, b)) in a.iter().zip(&b).enumerate() {
                let (ra, rb) = (
                    finish_class(ci as i64 + 1, a),
                    finish_class(ci as i64 + 1, b),
                );
                assert_eq!(
                    (ra.ap, ra.ar, ra.n_gt, ra.images),
                    (rb.ap, rb.ar, rb.n_gt, rb.images)
                );
                assert_eq!(a.scores, b.scores);
            }
        }
    }
}
