//! Readers of VisDrone DET datasets: annotation files (8 columns) and each image's own size.

use super::error::io_err;
use super::{EvalError, ImageRecord, Row};
use std::path::{Path, PathBuf};

/// Parses one comma-separated line of `ncols` numbers (a trailing comma is tolerated, as in
/// some VisDrone files); `None` for a blank line.
pub fn parse_numbers(
    text: &str,
    ncols: usize,
    path: &Path,
    line: usize,
) -> Result<Option<Vec<f64>>, EvalError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = |reason: String| EvalError::BadLine {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut fields: Vec<&str> = text.split(',').map(str::trim).collect();
    if fields.len() == ncols + 1 && fields[ncols].is_empty() {
        fields.pop();
    }
    if fields.len() != ncols {
        return Err(bad(format!(
            "expected {ncols} comma-separated numbers, found {}",
            fields.len()
        )));
    }
    let mut out = Vec::with_capacity(ncols);
    for (i, f) in fields.iter().enumerate() {
        let v: f64 = f
            .parse()
            .map_err(|_| bad(format!("column {}: '{f}' is not a number", i + 1)))?;
        if !v.is_finite() {
            return Err(bad(format!("column {}: '{f}' is not finite", i + 1)));
        }
        out.push(v);
    }
    Ok(Some(out))
}

/// Reads a DET file (annotation or result: `x,y,w,h,score,category,truncation,occlusion`).
pub fn read_det_file(path: &Path) -> Result<Vec<Row>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    parse_det_text(&text, path)
}

/// Parses the text of a DET file; `path` only names it in errors.
pub fn parse_det_text(text: &str, path: &Path) -> Result<Vec<Row>, EvalError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(v) = parse_numbers(line, 8, path, i + 1)? else {
            continue;
        };
        let category = v[5];
        if category.fract() != 0.0 || category < 0.0 {
            return Err(EvalError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                reason: format!("column 6 (category): '{category}' is not a class id"),
            });
        }
        rows.push(Row::new(v[0], v[1], v[2], v[3], v[4], category as i64));
    }
    Ok(rows)
}

/// Width and height from the image file's header (never assumed: VisDrone sizes vary per image).
pub fn image_size(path: &Path) -> Result<(u32, u32), EvalError> {
    image::image_dimensions(path).map_err(|e| EvalError::ImageSize {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Annotation file names (`*.txt`) in byte order, as the toolkit lists them.
pub fn list_annotations(dir: &Path) -> Result<Vec<String>, EvalError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".txt") {
            names.push(stem.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// A VisDrone-DET split on disk: `annotations/*.txt` and `<images_dir>/*.jpg`.
#[derive(Debug, Clone)]
pub struct DetDataset {
    pub root: PathBuf,
    pub images_dir: PathBuf,
    pub names: Vec<String>,
}

impl DetDataset {
    /// Opens `root`; `images` names the image folder (`images`, or `data` in SlimYOLOv3's lists).
    pub fn open(root: &Path, images: &str) -> Result<Self, EvalError> {
        let ann = root.join("annotations");
        if !ann.is_dir() {
            return Err(EvalError::Dataset {
                path: root.to_path_buf(),
                reason: "no annotations/ folder (expected VisDrone-DET layout)".into(),
            });
        }
        let images_dir = root.join(images);
        if !images_dir.is_dir() {
            return Err(EvalError::Dataset {
                path: images_dir,
                reason: "image folder missing".into(),
            });
        }
        let names = list_annotations(&ann)?;
        Ok(DetDataset {
            root: root.to_path_buf(),
            images_dir,
            names,
        })
    }

    pub fn annotation_path(&self, name: &str) -> PathBuf {
        self.root.join("annotations").join(format!("{name}.txt"))
    }

    pub fn image_path(&self, name: &str) -> PathBuf {
        self.images_dir.join(format!("{name}.jpg"))
    }

    /// Loads every image's GT and size (detections left empty).
    pub fn load_gt(&self) -> Result<Vec<ImageRecord>, EvalError> {
        self.names
            .iter()
            .map(|name| {
                let gt = read_det_file(&self.annotation_path(name))?;
                let (width, height) = image_size(&self.image_path(name))?;
                Ok(ImageRecord {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_trailing_comma() {
        let rows = parse_det_text(
            "684,8,273,116,0,0,0,0\n\n1,2,3,4,1,4,0,1,\n",
            Path::new("a.txt"),
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].category, 0);
        assert_eq!(rows[1], Row::new(1.0, 2.0, 3.0, 4.0, 1.0, 4));
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        let e = parse_det_text("1,2,3,4,1,4,0,0\n1,2,3\n", Path::new("x.txt")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.txt:2: expected 8 comma-separated numbers, found 3"
        );
        let e = parse_det_text("1,2,a,4,1,4,0,0\n", Path::new("x.txt")).unwrap_err();
        assert!(e.to_string().starts_with("x.txt:1: column 3"), "{e}");
        let e = parse_det_text("1,2,3,4,1,4.5,0,0\n", Path::new("x.txt")).unwrap_err();
        assert!(e.to_string().contains("category"), "{e}");
        let e = parse_det_text("1,2,3,4,1,nan,0,0\n", Path::new("x.txt")).unwrap_err();
        assert!(e.to_string().contains("not finite"), "{e}");
    }
}
