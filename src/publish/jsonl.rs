//! JSON Lines sink: one line per processed frame, the `kestrel detect` schema plus `frame`,
//! `t_capture_ns`, `latency_ms` and `source`, so a run's output can be replayed into eval tools.

use super::{FrameReport, PublishError, Sink};
use crate::detect::cli::detection_json;
use std::io::Write;
use std::path::PathBuf;

/// Writes to a file, or to stdout when the path is `-`.
pub struct JsonlSink {
    out: Box<dyn Write + Send>,
    path: String,
    names: Vec<String>,
}

impl JsonlSink {
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &str, names: Vec<String>) -> Result<JsonlSink, PublishError> {
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::BufWriter::new(std::io::stdout()))
        } else {
            let f =
                std::fs::File::create(PathBuf::from(path)).map_err(|source| PublishError::Io {
                    path: path.into(),
                    source,
                })?;
            Box::new(std::io::BufWriter::new(f))
        };
        Ok(JsonlSink {
            out,
            path: path.into(),
            names,
        })
    }
}

/// The JSON object of one frame.
pub fn report_json(r: &FrameReport, names: &[String]) -> serde_json::Value {
    let image = r
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| format!("{}#{}", r.source_id, r.seq));
    let mut v = detection_json(&image, r.width, r.height, &r.detections, names);
    v["frame"] = r.seq.into();
    v["t_capture_ns"] = r.t_capture_ns.into();
    v["latency_ms"] = r.latency_ms.into();
    v["source"] = r.source_id.clone().into();
    v
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        "jsonl"
    }

    fn publish(&mut self, report: &FrameReport) -> Result<(), PublishError> {
        let line = report_json(report, &self.names);
        writeln!(self.out, "{line}").map_err(|source| PublishError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn flush(&mut self) -> Result<(), PublishError> {
        self.out.flush().map_err(|source| PublishError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{BBox, Detection};

    #[test]
    fn line_has_detect_schema_plus_frame_fields() {
        let r = FrameReport {
            seq: 7,
            t_capture_ns: 123,
            source_id: "synthetic".into(),
            path: None,
            width: 10,
            height: 20,
            detections: vec![Detection {
                class_id: 1,
                score: 0.5,
                bbox: BBox {
                    x: 1.0,
                    y: 2.0,
                    w: 3.0,
                    h: 4.0,
                },
            }],
            latency_ms: 2.5,
        };
        let v = report_json(&r, &["a".into(), "b".into()]);
        assert_eq!(v["frame"], 7);
        assert_eq!(v["t_capture_ns"], 123);
        assert_eq!(v["latency_ms"], 2.5);
        assert_eq!(v["detections"][0]["label"], "b");
        assert_eq!(v["image"], "synthetic#7");
    }
}
