//! Output of `kestrel eval`: a table for people, JSON for scripts.

use super::error::io_err;
use super::visdrone::{Summary, VisdroneResult};
use super::{EvalError, CLASS_NAMES};
use std::fmt::Write as _;
use std::path::Path;

fn class_name(id: i64) -> &'static str {
    usize::try_from(id - 1)
        .ok()
        .and_then(|i| CLASS_NAMES.get(i))
        .copied()
        .unwrap_or("?")
}

fn row(out: &mut String, label: &str, extra: &str, s: &Summary) {
    let _ = writeln!(
        out,
        "{label:<16}{extra:>8}{:>8.2}{:>8.2}{:>8.2}{:>8.2}{:>8.2}{:>8.2}{:>8.2}",
        100.0 * s.ap,
        100.0 * s.ap50,
        100.0 * s.ap75,
        100.0 * s.ar1,
        100.0 * s.ar10,
        100.0 * s.ar100,
        100.0 * s.ar500
    );
}

/// The table printed on stdout (percent, as the toolkit prints).
pub fn table(res: &VisdroneResult, protocol: &str) -> String {
    let mut out = format!("protocol: {protocol} (percent; AP over IoU 0.50:0.95, maxDets 500)\n");
    let _ = writeln!(
        out,
        "{:<16}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}",
        "class",
        // The class weight: images containing the class (DET), sequences (VID).
        if protocol == "visdrone-vid" {
            "seqs"
        } else {
            "images"
        },
        "AP",
        "AP50",
        "AP75",
        "AR1",
        "AR10",
        "AR100",
        "AR500"
    );
    for c in &res.classes {
        row(
            &mut out,
            class_name(c.class_id),
            &c.images.to_string(),
            &c.summary(),
        );
    }
    let label = if res.areas.is_some() {
        "all (mean)"
    } else {
        "all (weighted)"
    };
    row(&mut out, label, "", &res.summary);
    if let Some([s, m, l]) = res.areas {
        let _ = writeln!(
            out,
            "AP small {:.2}  medium {:.2}  large {:.2}",
            100.0 * s,
            100.0 * m,
            100.0 * l
        );
    }
    out
}

/// The JSON report: the seven numbers as fractions, plus per-class values.
pub fn to_json(res: &VisdroneResult, protocol: &str) -> serde_json::Value {
    let mut root = serde_json::to_value(res.summary).unwrap_or_default();
    let classes: Vec<serde_json::Value> = res
        .classes
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(c.summary()).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.insert("id".into(), c.class_id.into());
                m.insert("name".into(), class_name(c.class_id).into());
                m.insert("images".into(), c.images.into());
                m.insert("gt".into(), c.n_gt.into());
            }
            v
        })
        .collect();
    if let Some(m) = root.as_object_mut() {
        m.insert("protocol".into(), protocol.into());
        if let Some([s, md, l]) = res.areas {
            m.insert("APs".into(), s.into());
            m.insert("APm".into(), md.into());
            m.insert("APl".into(), l.into());
        }
        m.insert("per_class".into(), classes.into());
    }
    root
}

pub fn write_json(path: &Path, res: &VisdroneResult, protocol: &str) -> Result<(), EvalError> {
    let text =
        serde_json::to_string_pretty(&to_json(res, protocol)).map_err(|e| EvalError::Output {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    std::fs::write(path, text + "\n").map_err(io_err(path))
}
