//! Hand-computed checks of the toolkit's accumulation quirks.

use super::coco::coco_threshold;
use super::visdrone::{evaluate, visdrone_threshold};
use super::{ImageRecord, Row};

fn img(name: &str, gt: Vec<Row>, det: Vec<Row>) -> ImageRecord {
    ImageRecord {
        name: name.into(),
        width: 200,
        height: 200,
        gt,
        det,
    }
}

fn b(x: f64, score: f64, cat: i64) -> Row {
    Row::new(x, 10.0, 20.0, 20.0, score, cat)
}

#[test]
fn classes_are_weighted_by_images_containing_them() {
    let images = vec![
        img(
            "1",
            vec![b(0.0, 1.0, 1), b(50.0, 1.0, 4)],
            vec![b(0.0, 0.9, 1)],
        ),
        img("2", vec![b(0.0, 1.0, 4)], vec![b(0.0, 0.8, 4)]),
        img("3", vec![b(0.0, 1.0, 4)], vec![]),
    ];
    let r = evaluate(images);
    // class 1: AP 1 in 1 image; class 4: AP 1/3 in 3 images → (1 + 3·1/3) / 4, not the plain 2/3.
    assert!((r.summary.ap - 0.5).abs() < 1e-15, "{:?}", r.summary);
    assert!((r.summary.ar500 - 0.5).abs() < 1e-15);
    assert_eq!(
        r.classes.iter().map(|c| c.images).collect::<Vec<_>>(),
        vec![1, 3]
    );
}

#[test]
fn score_zero_gt_counts_in_ngt_and_absorbs_detections() {
    let images = vec![img(
        "1",
        vec![b(0.0, 1.0, 1), b(100.0, 0.0, 1)],
        vec![b(0.0, 0.9, 1), b(100.0, 0.95, 1), b(101.0, 0.3, 1)],
    )];
    let r = evaluate(images);
    assert!((r.summary.ap - 0.5).abs() < 1e-15, "{:?}", r.summary);
    assert!((r.summary.ar500 - 0.5).abs() < 1e-15);
}

#[test]
fn class_with_only_ignore_gt_stays_in_with_ap_zero() {
    let images = vec![img(
        "1",
        vec![b(0.0, 1.0, 1), b(100.0, 0.0, 2)],
        vec![b(0.0, 0.9, 1), b(100.0, 0.9, 2)],
    )];
    let r = evaluate(images);
    assert_eq!(r.classes.len(), 2);
    assert!((r.summary.ap - 0.5).abs() < 1e-15, "{:?}", r.summary);
}

#[test]
fn max_dets_are_the_first_lines_of_the_file_across_classes() {
    // Line 1 is an "others" detection: it fills the only AR1 slot but is never a false positive.
    let images = vec![img(
        "1",
        vec![b(0.0, 1.0, 1)],
        vec![b(150.0, 0.99, 11), b(0.0, 0.5, 1)],
    )];
    let s = evaluate(images).summary;
    assert_eq!((s.ar1, s.ar10, s.ar500, s.ap), (0.0, 1.0, 1.0, 1.0));
}

#[test]
fn lines_past_500_are_never_scored() {
    let mut det: Vec<Row> = (0..500)
        .map(|i| b(150.0, 0.9 - i as f64 * 1e-4, 4))
        .collect();
    det.push(b(0.0, 0.99, 1));
    let s = evaluate(vec![img("1", vec![b(0.0, 1.0, 1)], det)]).summary;
    assert_eq!((s.ap, s.ar500), (0.0, 0.0));
}

#[test]
fn no_detections_gives_zero_and_no_gt_drops_the_class() {
    let images = vec![img("1", vec![b(0.0, 1.0, 3)], vec![b(0.0, 0.9, 5)])];
    let r = evaluate(images);
    assert_eq!(r.classes.len(), 1);
    assert_eq!(r.summary.ap, 0.0);
}

#[test]
fn thresholds_keep_their_last_bits() {
    assert_eq!(visdrone_threshold(7), 0.8500000000000001);
    assert_eq!(visdrone_threshold(8), 0.9);
    assert_eq!(coco_threshold(8), 0.8999999999999999);
    assert_eq!(coco_threshold(9), 0.95);
}

#[test]
fn exact_iou_tie_at_085_is_rejected_like_octave() {
    // GT 20×10 vs detection 17×10: IoU 0.85 exactly, below Octave's 0.8500000000000001.
    let gt = Row::new(0.0, 0.0, 20.0, 10.0, 1.0, 4);
    let dt = Row::new(0.0, 0.0, 17.0, 10.0, 0.9, 4);
    let r = evaluate(vec![img("1", vec![gt], vec![dt])]);
    let c = &r.classes[0];
    assert_eq!(c.ap[6], 1.0);
    assert_eq!(c.ap[7], 0.0);
}

#[test]
fn score_ties_keep_file_order_then_image_order() {
    // One GT; two detections with equal scores. File order FP, TP → precision 1/2 at recall 1;
    // file order TP, FP → AP 1 (a stable sort, as the toolkit's).
    let fp_first = vec![img(
        "1",
        vec![b(0.0, 1.0, 1)],
        vec![b(150.0, 0.5, 1), b(0.0, 0.5, 1)],
    )];
    assert_eq!(evaluate(fp_first).summary.ap50, 0.5);
    let tp_first = vec![img(
        "1",
        vec![b(0.0, 1.0, 1)],
        vec![b(0.0, 0.5, 1), b(150.0, 0.5, 1)],
    )];
    assert_eq!(evaluate(tp_first).summary.ap50, 1.0);
    // Across images the tie keeps image order: the FP in image 1 ranks before the TP in image 2.
    let images = vec![
        img("1", vec![], vec![b(150.0, 0.5, 1)]),
        img("2", vec![b(0.0, 1.0, 1)], vec![b(0.0, 0.5, 1)]),
    ];
    assert_eq!(evaluate(images).summary.ap50, 0.5);
}

#[test]
fn detections_on_images_without_gt_are_false_positives() {
    // DET (unlike VID frames) counts every listed image: a confident miss on an image without GT
    // halves the precision of class 1.
    let images = vec![
        img("1", vec![b(0.0, 1.0, 1)], vec![b(0.0, 0.5, 1)]),
        img("2", vec![], vec![b(0.0, 0.9, 1)]),
    ];
    let r = evaluate(images);
    assert_eq!(r.summary.ap50, 0.5);
    assert_eq!(r.classes[0].images, 1);
}
