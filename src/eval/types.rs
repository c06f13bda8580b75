//! Rows of annotation and result files, and one evaluated image.

/// One line of a VisDrone annotation or result file (the columns the evaluation uses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// GT: 1 evaluated, 0 ignored; detections: confidence.
    pub score: f64,
    /// 0 ignored region, 1..10 evaluated classes, 11 others.
    pub category: i64,
}

impl Row {
    pub fn new(x: f64, y: f64, w: f64, h: f64, score: f64, category: i64) -> Self {
        Row {
            x,
            y,
            w,
            h,
            score,
            category,
        }
    }
}

/// The evaluated classes, in VisDrone ids (model class = id − 1).
pub const CLASS_NAMES: [&str; 10] = [
    "pedestrian",
    "people",
    "bicycle",
    "car",
    "van",
    "truck",
    "tricycle",
    "awning-tricycle",
    "bus",
    "motor",
];

/// One evaluated unit (a DET image) with its own size, its GT and its detections in file order.
#[derive(Debug, Clone, Default)]
pub struct ImageRecord {
    /// Annotation file name without `.txt`.
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub gt: Vec<Row>,
    pub det: Vec<Row>,
}
