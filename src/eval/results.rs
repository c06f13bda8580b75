//! Result files (`x,y,w,h,score,category,-1,-1`): read for scoring, written sorted by score.

use super::dataset::parse_det_text;
use super::error::io_err;
use super::{EvalError, Row};
use std::fmt::Write as _;
use std::path::Path;

/// The toolkit scores only the first 500 lines of a file (its largest maxDets).
pub const MAX_LINES: usize = 500;

/// Reads `dir/<name>.txt`; a missing file is an error, an empty one means "no detections".
pub fn read_result_file(dir: &Path, name: &str) -> Result<Vec<Row>, EvalError> {
    let path = dir.join(format!("{name}.txt"));
    if !path.is_file() {
        return Err(EvalError::MissingResult { path });
    }
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    parse_det_text(&text, &path)
}

/// The lines Kestrel writes for one image: sorted by descending score (stable), at most 500,
/// and one never-evaluated category-11 placeholder when there is nothing (the official toolkit
/// aborts on an empty file).
pub fn format_results(dets: &[Row]) -> String {
    let mut sorted: Vec<&Row> = dets.iter().collect();
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = String::new();
    for d in sorted.iter().take(MAX_LINES) {
        // `{}` on f64 prints the shortest text that reads back as the same number.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},-1,-1",
            d.x, d.y, d.w, d.h, d.score, d.category
        );
    }
    if out.is_empty() {
        out.push_str("0,0,1,1,0.001,11,-1,-1\n");
    }
    out
}

/// Writes `dir/<name>.txt` (see [`format_results`]).
pub fn write_result_file(dir: &Path, name: &str, dets: &[Row]) -> Result<(), EvalError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(format!("{name}.txt"));
    std::fs::write(&path, format_results(dets)).map_err(io_err(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_sorts_truncates_and_round_trips() {
        let dets: Vec<Row> = (0..600)
            .map(|i| Row::new(i as f64 * 0.1, 1.0 / 3.0, 2.0, 3.0, (i % 7) as f64 / 7.0, 4))
            .collect();
        let text = format_results(&dets);
        let back = parse_det_text(&text, Path::new("r.txt")).unwrap();
        assert_eq!(back.len(), MAX_LINES);
        assert!(back.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(back[0].y, 1.0 / 3.0);
        assert_eq!(back[0], dets[6]);
    }

    #[test]
    fn empty_results_get_a_placeholder_and_missing_file_is_an_error() {
        let text = format_results(&[]);
        let rows = parse_det_text(&text, Path::new("r.txt")).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].category, 11);
        let dir = tempfile::tempdir().unwrap();
        let e = read_result_file(dir.path(), "nope").unwrap_err();
        assert!(e.to_string().contains("nope.txt"), "{e}");
        std::fs::write(dir.path().join("empty.txt"), "").unwrap();
        assert!(read_result_file(dir.path(), "empty").unwrap().is_empty());
    }
}
