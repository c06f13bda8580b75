//! VisDrone-VID: `sequences/<seq>/0000001.jpg …` and `annotations/<seq>.txt` (10 columns:
//! `frame_index,target_id,x,y,w,h,score,category,truncation,occlusion`), turned into the frames
//! the official VisDrone2018-VID toolkit evaluates (`dropObjectsInIgr`, `calcAccuracy`).

use super::dataset::{image_size, list_annotations, parse_numbers};
use super::error::io_err;
use super::{EvalError, ImageRecord, Row};
use std::path::{Path, PathBuf};

/// One line of a VID file: its frame (1-based) and the eight DET columns that matter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VidRow {
    pub frame: usize,
    pub row: Row,
}

/// Parses the text of a VID annotation or result file; `path` only names it in errors.
pub fn parse_vid_text(text: &str, path: &Path) -> Result<Vec<VidRow>, EvalError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(v) = parse_numbers(line, 10, path, i + 1)? else {
            continue;
        };
        let bad = |col: usize, what: &str| EvalError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            reason: format!("column {col} ({what}): '{}' is not valid", v[col - 1]),
        };
        if v[0].fract() != 0.0 || v[0] < 1.0 {
            return Err(bad(1, "frame_index, an integer ≥ 1"));
        }
        if v[7].fract() != 0.0 || v[7] < 0.0 {
            return Err(bad(8, "category, a class id"));
        }
        rows.push(VidRow {
            frame: v[0] as usize,
            row: Row::new(v[2], v[3], v[4], v[5], v[6], v[7] as i64),
        });
    }
    Ok(rows)
}

/// Reads a VID file (annotation or result).
pub fn read_vid_file(path: &Path) -> Result<Vec<VidRow>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    parse_vid_text(&text, path)
}

/// Reads `dir/<seq>.txt`; a missing file is an error, an empty one means "no detections".
pub fn read_vid_results(dir: &Path, seq: &str) -> Result<Vec<VidRow>, EvalError> {
    let path = dir.join(format!("{seq}.txt"));
    if !path.is_file() {
        return Err(EvalError::MissingResult { path });
    }
    read_vid_file(&path)
}

/// One sequence: its size (that of its first frame, as the toolkit assumes), GT and detections.
#[derive(Debug, Clone, Default)]
pub struct VidSequence {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub gt: Vec<VidRow>,
    pub det: Vec<VidRow>,
}

/// A VisDrone-VID split on disk.
#[derive(Debug, Clone)]
pub struct VidDataset {
    pub root: PathBuf,
    pub names: Vec<String>,
}

impl VidDataset {
    pub fn open(root: &Path) -> Result<Self, EvalError> {
        for sub in ["annotations", "sequences"] {
            if !root.join(sub).is_dir() {
                return Err(EvalError::Dataset {
                    path: root.to_path_buf(),
                    reason: format!("no {sub}/ folder (expected VisDrone-VID layout)"),
                });
            }
        }
        let names = list_annotations(&root.join("annotations"))?;
        Ok(VidDataset {
            root: root.to_path_buf(),
            names,
        })
    }

    /// Frame `frame` (1-based) of sequence `seq`: `sequences/<seq>/<7 digits>.jpg`.
    pub fn frame_path(&self, seq: &str, frame: usize) -> PathBuf {
        self.root
            .join("sequences")
            .join(seq)
            .join(format!("{frame:07}.jpg"))
    }

    /// Loads every sequence's GT and size (detections left empty).
    pub fn load_gt(&self) -> Result<Vec<VidSequence>, EvalError> {
        self.names
            .iter()
            .map(|name| {
                let ann = self.root.join("annotations").join(format!("{name}.txt"));
                let gt = read_vid_file(&ann)?;
                let (width, height) = image_size(&self.frame_path(name, 1))?;
                Ok(VidSequence {
                    name: name.clone(),
                    width,
                    height,
                    gt,
                    det: Vec::new(),
                })
            })
            .collect()
    }
}

/// Distinct frames that have a GT line, ascending (the frames worth running a model on).
pub fn gt_frames(seq: &VidSequence) -> Vec<usize> {
    let mut f: Vec<usize> = seq.gt.iter().map(|r| r.frame).collect();
    f.sort_unstable();
    f.dedup();
    f
}

/// The frames the toolkit evaluates, in order, with regions removed per frame (frames 1 … last GT
/// frame; detections past it dropped; a frame counts only if GT other than regions is left).
pub fn evaluated_frames(seq: &VidSequence) -> Vec<ImageRecord> {
    let last = seq.gt.iter().map(|r| r.frame).max().unwrap_or(0);
    let mut frames: Vec<ImageRecord> = (0..last)
        .map(|i| ImageRecord {
            name: format!("{}/{:07}", seq.name, i + 1),
            width: seq.width,
            height: seq.height,
            gt: Vec::new(),
            det: Vec::new(),
        })
        .collect();
    for r in &seq.gt {
        frames[r.frame - 1].gt.push(r.row);
    }
    for r in seq.det.iter().filter(|r| r.frame <= last) {
        frames[r.frame - 1].det.push(r.row);
    }
    for f in &mut frames {
        super::ignore::drop_in_ignored(f);
    }
    frames.retain(|f| !f.gt.is_empty());
    frames
}

/// Frames of all sequences in listing order, and each class's weight: the number of sequences
/// whose evaluated GT has it (the VID toolkit's `evalClass`).
pub fn frames_and_weights(seqs: &[VidSequence]) -> (Vec<ImageRecord>, [usize; 10]) {
    let mut weights = [0usize; 10];
    let mut all = Vec::new();
    for seq in seqs {
        let frames = evaluated_frames(seq);
        for (c, w) in weights.iter_mut().enumerate() {
            let id = c as i64 + 1;
            if frames.iter().any(|f| f.gt.iter().any(|r| r.category == id)) {
                *w += 1;
            }
        }
        all.extend(frames);
    }
    (all, weights)
}

#[cfg(test)]
#[path = "vid_tests.rs"]
mod tests;

/// Scores sequences under the VID toolkit's rules.
pub fn evaluate_vid(seqs: &[VidSequence]) -> super::visdrone::VisdroneResult {
    let _span = tracing::info_span!("visdrone_vid_eval", sequences = seqs.len()).entered();
    let (frames, weights) = frames_and_weights(seqs);
    super::visdrone::evaluate_units(&frames, super::visdrone::Rules::Vid, Some(&weights))
}
