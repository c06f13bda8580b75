//! Darknet `.cfg` files: INI-like text → typed layers with every shape known before weights.
//!
//! The raw sections are kept (with line numbers) so that errors can point at the line, and so
//! that pruning can write a cfg back with `[net]` verbatim and only `filters` changed.

use super::layers::{Activation, LayerSpec};
use super::ModelError;
use std::path::Path;

/// One `key=value` line of a section.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// One `[name]` block with its entries, in file order.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

impl Section {
    /// The entry of `key`; Darknet takes the last one when a key repeats.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }
}

/// `[net]` values the engine uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetParams {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

/// Output shape of a layer (batch excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

/// A parsed cfg: `[net]`, the layers (index 0 = first section after `[net]`) and the raw text.
#[derive(Debug, Clone)]
pub struct Cfg {
    /// Where it came from, for error messages.
    pub name: String,
    pub net: NetParams,
    pub net_section: Section,
    pub sections: Vec<Section>,
    pub layers: Vec<LayerSpec>,
    /// The original text (pruning copies `[net]` from it verbatim).
    pub text: String,
}

/// Splits the text into sections, applying Darknet's comment and whitespace rules.
pub fn split_sections(text: &str, name: &str) -> Result<Vec<Section>, ModelError> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(head) = rest.strip_suffix(']') else {
                return Err(ModelError::cfg(
                    name,
                    line_no,
                    "",
                    "section header without closing ']'",
                ));
            };
            sections.push(Section {
                name: head.trim().to_string(),
                line: line_no,
                entries: Vec::new(),
            });
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(ModelError::cfg(
                name,
                line_no,
                "",
                format!("expected key=value, found '{line}'"),
            ));
        };
        let Some(section) = sections.last_mut() else {
            return Err(ModelError::cfg(
                name,
                line_no,
                k.trim(),
                "key=value before the first [section]",
            ));
        };
        section.entries.push(Entry {
            key: k.trim().to_string(),
            value: v.trim().to_string(),
            line: line_no,
        });
    }
    Ok(sections)
}

fn strip_comment(line: &str) -> &str {
    match line.find(['#', ';']) {
        Some(i) => &line[..i],
        None => line,
    }
}

impl Cfg {
    /// Reads and parses a cfg file.
    ///
    /// # Errors
    /// I/O errors and every malformation, with file, line and key.
    pub fn parse_file(path: &Path) -> Result<Cfg, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Cfg::parse_str(&text, &path.display().to_string())
    }

    /// Parses cfg text; `name` is used in error messages.
    ///
    /// # Errors
    /// Unknown blocks, missing or non-numeric keys, routes to future layers, shortcut mismatches.
    pub fn parse_str(text: &str, name: &str) -> Result<Cfg, ModelError> {
        let mut sections = split_sections(text, name)?;
        if sections.is_empty() {
            return Err(ModelError::cfg(
                name,
                1,
                "",
                "no sections: not a Darknet cfg",
            ));
        }
        let net_section = sections.remove(0);
        if net_section.name != "net" && net_section.name != "network" {
            return Err(ModelError::cfg(
                name,
                net_section.line,
                "",
                format!(
                    "the first section must be [net], found [{}]",
                    net_section.name
                ),
            ));
        }
        let reader = KeyReader {
            file: name,
            section: &net_section,
        };
        let net = NetParams {
            width: reader.usize_or("width", 416)?,
            height: reader.usize_or("height", 416)?,
            channels: reader.usize_or("channels", 3)?,
        };
        let mut layers = Vec::with_capacity(sections.len());
        for (index, s) in sections.iter().enumerate() {
            layers.push(LayerSpec::from_section(
                &KeyReader {
                    file: name,
                    section: s,
                },
                index,
            )?);
        }
        let cfg = Cfg {
            name: name.to_string(),
            net,
            net_section,
            sections,
            layers,
            text: text.to_string(),
        };
        cfg.shapes(cfg.net.width, cfg.net.height)?;
        Ok(cfg)
    }

    /// Output shape of every layer at the given input size (channels from `[net]`).
    ///
    /// # Errors
    /// Inconsistent layers (shortcut channel mismatch, route with mismatched sizes, bad sizes).
    pub fn shapes(&self, width: usize, height: usize) -> Result<Vec<Shape>, ModelError> {
        let input = Shape {
            c: self.net.channels,
            h: height,
            w: width,
        };
        let mut out: Vec<Shape> = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let prev = if i == 0 { input } else { out[i - 1] };
            let s = layer.output_shape(prev, &out).map_err(|reason| {
                ModelError::cfg(
                    &self.name,
                    self.sections[i].line,
                    "",
                    format!("layer {i} [{}]: {reason}", self.sections[i].name),
                )
            })?;
            out.push(s);
        }
        Ok(out)
    }

    /// Input shape of layer `i` (the previous layer's output, or the network input).
    pub fn input_shape(&self, shapes: &[Shape], i: usize, width: usize, height: usize) -> Shape {
        if i == 0 {
            Shape {
                c: self.net.channels,
                h: height,
                w: width,
            }
        } else {
            shapes[i - 1]
        }
    }

    /// Number of classes of the first `[yolo]` layer (all heads agree in YOLOv3 cfgs).
    pub fn num_classes(&self) -> usize {
        self.layers
            .iter()
            .find_map(|l| match l {
                LayerSpec::Yolo(y) => Some(y.classes),
                _ => None,
            })
            .unwrap_or(0)
    }
}

/// Typed access to a section's keys, producing located errors.
pub struct KeyReader<'a> {
    pub file: &'a str,
    pub section: &'a Section,
}

impl KeyReader<'_> {
    fn err(&self, line: usize, key: &str, reason: impl Into<String>) -> ModelError {
        ModelError::cfg(
            self.file,
            line,
            key,
            format!("[{}] {}", self.section.name, reason.into()),
        )
    }

    fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ModelError> {
        match self.section.get(key) {
            None => Ok(None),
            Some(e) => {
                e.value.parse::<T>().map(Some).map_err(|_| {
                    self.err(e.line, key, format!("'{}' is not a valid number", e.value))
                })
            }
        }
    }

    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize, ModelError> {
        Ok(self.parse::<usize>(key)?.unwrap_or(default))
    }

    pub fn usize_req(&self, key: &str) -> Result<usize, ModelError> {
        self.parse::<usize>(key)?.ok_or_else(|| {
            self.err(
                self.section.line,
                key,
                format!("missing required key '{key}'"),
            )
        })
    }

    pub fn i64_or(&self, key: &str, default: i64) -> Result<i64, ModelError> {
        Ok(self.parse::<i64>(key)?.unwrap_or(default))
    }

    pub fn f32_or(&self, key: &str, default: f32) -> Result<f32, ModelError> {
        Ok(self.parse::<f32>(key)?.unwrap_or(default))
    }

    pub fn str_or<'s>(&'s self, key: &str, default: &'s str) -> &'s str {
        self.section
            .get(key)
            .map(|e| e.value.as_str())
            .unwrap_or(default)
    }

    /// A comma-separated list of numbers (`layers = -1, 61`, `anchors = 10,13, 16,30`).
    pub fn list<T: std::str::FromStr>(&self, key: &str) -> Result<Option<Vec<T>>, ModelError> {
        let Some(e) = self.section.get(key) else {
            return Ok(None);
        };
        e.value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<T>()
                    .map_err(|_| self.err(e.line, key, format!("'{s}' is not a valid number")))
            })
            .collect::<Result<Vec<T>, _>>()
            .map(Some)
    }

    pub fn activation(&self, key: &str, default: Activation) -> Result<Activation, ModelError> {
        match self.section.get(key) {
            None => Ok(default),
            Some(e) => Activation::parse(&e.value)
                .ok_or_else(|| self.err(e.line, key, format!("unknown activation '{}'", e.value))),
        }
    }

    /// Line of a key (or of the section header when absent), for errors found later.
    pub fn line_of(&self, key: &str) -> usize {
        self.section
            .get(key)
            .map(|e| e.line)
            .unwrap_or(self.section.line)
    }

    pub fn error(&self, key: &str, reason: impl Into<String>) -> ModelError {
        self.err(self.line_of(key), key, reason)
    }

    /// Warns about keys this engine does not use (training-only keys are expected and quiet).
    pub fn warn_unknown(&self, known: &[&str]) {
        for e in &self.section.entries {
            if !known.contains(&e.key.as_str()) && !TRAINING_KEYS.contains(&e.key.as_str()) {
                tracing::warn!(
                    file = self.file,
                    line = e.line,
                    "[{}] unknown key '{}' ignored",
                    self.section.name,
                    e.key
                );
            }
        }
    }
}

/// Keys Darknet reads only for training; present in every real cfg, irrelevant for inference.
const TRAINING_KEYS: &[&str] = &[
    "jitter",
    "ignore_thresh",
    "truth_thresh",
    "random",
    "iou_normalizer",
    "cls_normalizer",
    "iou_loss",
    "nms_kind",
    "beta_nms",
    "max_delta",
    "resize",
    "obj_normalizer",
    "iou_thresh",
    "counters_per_class",
    "label_smooth_eps",
    "new_coords",
    "max",
    "stopbackward",
    "dontload",
    "dontloadscales",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blank_lines_and_crlf() {
        let text = "[net]\r\n  # indented comment\r\nwidth = 64 ; inline\r\n \t \r\nheight=32#x\r\n[maxpool]\r\nsize=2\r\nstride=2\r\n";
        let cfg = Cfg::parse_str(text, "t.cfg").unwrap();
        assert_eq!(
            cfg.net,
            NetParams {
                width: 64,
                height: 32,
                channels: 3
            }
        );
        assert_eq!(cfg.layers.len(), 1);
        assert_eq!(cfg.sections[0].line, 6);
    }

    #[test]
    fn unknown_block_names_file_and_line() {
        let err = Cfg::parse_str("[net]\nwidth=32\nheight=32\n\n[dropout_x]\n", "bad.cfg")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.cfg:5"), "{err}");
        assert!(err.contains("dropout_x"), "{err}");
    }

    #[test]
    fn non_numeric_value_names_key() {
        let err = Cfg::parse_str("[net]\nwidth=3x2\n", "n.cfg")
            .unwrap_err()
            .to_string();
        assert!(err.contains("n.cfg:2") && err.contains("width"), "{err}");
    }
}
