//! Hand-computed checks of the VID toolkit's rules (VisDrone2018-VID-toolkit b5712fb).

use super::*;

fn r(frame: usize, x: f64, score: f64, cat: i64) -> VidRow {
    VidRow {
        frame,
        row: Row::new(x, 10.0, 20.0, 20.0, score, cat),
    }
}

fn seq(name: &str, gt: Vec<VidRow>, det: Vec<VidRow>) -> VidSequence {
    VidSequence {
        name: name.into(),
        width: 200,
        height: 200,
        gt,
        det,
    }
}

#[test]
fn parses_ten_columns_and_names_bad_lines() {
    let rows = parse_vid_text(
        "98,0,808,1,47,22,1,4,0,0\n\n1,-1,1,2,3,4,0.5,1,-1,-1,\n",
        Path::new("s.txt"),
    )
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].frame, 98);
    assert_eq!(rows[0].row, Row::new(808.0, 1.0, 47.0, 22.0, 1.0, 4));
    let e =
        parse_vid_text("1,0,1,2,3,4,1,4,0,0\n1,2,3,4,1,4,0,0\n", Path::new("s.txt")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "s.txt:2: expected 10 comma-separated numbers, found 8"
    );
    let e = parse_vid_text("0,0,1,2,3,4,1,4,0,0\n", Path::new("s.txt")).unwrap_err();
    assert!(
        e.to_string().starts_with("s.txt:1: column 1 (frame_index"),
        "{e}"
    );
    let e = parse_vid_text("1.5,0,1,2,3,4,1,4,0,0\n", Path::new("s.txt")).unwrap_err();
    assert!(e.to_string().contains("column 1"), "{e}");
    let e = parse_vid_text("1,0,1,2,3,4,1,-4,0,0\n", Path::new("s.txt")).unwrap_err();
    assert!(
        e.to_string().starts_with("s.txt:1: column 8 (category"),
        "{e}"
    );
    let e = parse_vid_text("1,0,1,x,3,4,1,4,0,0\n", Path::new("s.txt")).unwrap_err();
    assert!(e.to_string().starts_with("s.txt:1: column 4"), "{e}");
}

#[test]
fn detections_on_frames_without_gt_or_past_the_last_are_never_counted() {
    // GT on frames 1 and 3; confident false detections on frames 2 (no GT) and 5 (past the end).
    let s = seq(
        "a",
        vec![r(1, 0.0, 1.0, 1), r(3, 0.0, 1.0, 1)],
        vec![
            r(2, 0.0, 0.99, 1),
            r(5, 0.0, 0.99, 1),
            r(1, 0.0, 0.5, 1),
            r(3, 0.0, 0.4, 1),
        ],
    );
    let frames = evaluated_frames(&s);
    assert_eq!(
        frames.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["a/0000001", "a/0000003"]
    );
    let res = evaluate_vid(&[s]);
    assert_eq!((res.summary.ap, res.summary.ar500), (1.0, 1.0));
}

#[test]
fn max_dets_count_per_frame_and_per_class() {
    // Line 1 of the frame is a car: under DET rules it would take the only AR1 slot; under VID
    // rules the pedestrian's own first line (a hit, though not its best score) counts.
    let s = seq(
        "a",
        vec![r(1, 0.0, 1.0, 1), r(1, 100.0, 1.0, 4)],
        vec![r(1, 100.0, 0.9, 4), r(1, 0.0, 0.5, 1), r(1, 150.0, 0.95, 1)],
    );
    let res = evaluate_vid(&[s]);
    let ped = &res.classes[0];
    let car = &res.classes[1];
    assert_eq!(ped.summary().ar1, 1.0);
    assert_eq!(car.summary().ar1, 1.0);
    // AP pedestrian: FP (0.95) then TP (0.5): precision 1/2 at recall 1.
    assert_eq!(ped.ap[0], 0.5);
}

#[test]
fn regions_act_on_their_own_frame_and_region_only_frames_drop_out() {
    // Frame 1: a region over the GT box and a detection; frame 2: same boxes, no region.
    // Frame 3: only a region, with a false detection that must not count.
    let region = |f| VidRow {
        frame: f,
        row: Row::new(0.0, 0.0, 60.0, 60.0, 0.0, 0),
    };
    let s = seq(
        "a",
        vec![
            region(1),
            r(1, 0.0, 1.0, 4),
            r(2, 0.0, 1.0, 4),
            r(2, 100.0, 1.0, 4),
            region(3),
        ],
        vec![r(1, 0.0, 0.9, 4), r(2, 0.0, 0.8, 4), r(3, 120.0, 0.99, 4)],
    );
    let frames = evaluated_frames(&s);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].gt.len(), 2);
    let res = evaluate_vid(&[s]);
    // recall 1/2 at precision 1.
    assert_eq!(res.summary.ap50, 0.5);
}

#[test]
fn classes_are_weighted_by_sequences_not_frames() {
    // Sequence a: pedestrian on 3 frames, all found (AP 1); sequence b: car on 1 frame, missed
    // (AP 0). Weights 1 and 1 → 0.5 (frame weighting would give 0.75).
    let a = seq(
        "a",
        (1..=3).map(|f| r(f, 0.0, 1.0, 1)).collect(),
        (1..=3).map(|f| r(f, 0.0, 0.9, 1)).collect(),
    );
    let b = seq("b", vec![r(1, 0.0, 1.0, 4)], vec![r(1, 150.0, 0.9, 4)]);
    let res = evaluate_vid(&[a, b]);
    assert_eq!(
        res.classes.iter().map(|c| c.images).collect::<Vec<_>>(),
        [1, 1]
    );
    assert_eq!(res.summary.ap, 0.5);
}

#[test]
fn a_frame_with_only_others_is_evaluated_and_its_detections_are_false_positives() {
    // Frame 2 has only a class-11 GT row: it is an evaluated frame (unlike a frame without GT),
    // so its pedestrian detection is a false positive ranking first.
    let s = seq(
        "a",
        vec![r(1, 0.0, 1.0, 1), r(2, 100.0, 1.0, 11)],
        vec![r(1, 0.0, 0.5, 1), r(2, 0.0, 0.9, 1)],
    );
    assert_eq!(evaluated_frames(&s).len(), 2);
    assert_eq!(evaluate_vid(&[s]).summary.ap50, 0.5);
}
