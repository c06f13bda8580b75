//! Darknet cfg files: INI text → raw sections (kept verbatim for rewriting) → typed layers.

use super::cfg_layers::parse_layer;
use super::{LayerKind, ModelError};
use std::path::Path;

/// One `key=value` line of a section, with its 1-based line number.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A `[block]` exactly as written: its raw lines are kept so pruning can rewrite a cfg with only
/// `filters` changed.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSection {
    pub kind: String,
    pub line: usize,
    pub entries: Vec<Entry>,
    /// Every source line from the header up to the next header (comments and blanks included).
    pub lines: Vec<String>,
}

impl RawSection {
    /// The last value given for `key` (Darknet keeps the last one).
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }
}

/// The `[net]` settings the engine uses.
#[derive(Debug, Clone, PartialEq)]
pub struct NetParams {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

/// One network layer: where it was written and what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub index: usize,
    pub raw: RawSection,
    pub kind: LayerKind,
}

/// A parsed and validated Darknet cfg (every shape checked at the `[net]` size).
#[derive(Debug, Clone, PartialEq)]
pub struct Cfg {
    /// File name (or caller-given name) used in error messages.
    pub name: String,
    pub net: NetParams,
    pub net_raw: RawSection,
    /// Lines before `[net]` (comments), written back verbatim.
    pub preamble: Vec<String>,
    pub layers: Vec<Layer>,
}

impl Cfg {
    /// Reads and parses a cfg file.
    pub fn parse_file(path: &Path) -> Result<Cfg, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Cfg::parse_str(&text, &path.display().to_string())
    }

    /// Parses cfg text; `name` appears in error messages.
    pub fn parse_str(text: &str, name: &str) -> Result<Cfg, ModelError> {
        let (preamble, sections) = split_sections(text, name)?;
        let mut iter = sections.into_iter();
        let net_raw = match iter.next() {
            Some(s) if s.kind == "net" || s.kind == "network" => s,
            Some(s) => {
                return Err(ModelError::Layer {
                    file: name.into(),
                    line: s.line,
                    section: s.kind,
                    layer: 0,
                    key: "[net]".into(),
                    why: "the first section must be [net]".into(),
                })
            }
            None => {
                return Err(ModelError::Syntax {
                    file: name.into(),
                    line: 1,
                    text: "no [net] section".into(),
                })
            }
        };
        let net = super::cfg_layers::parse_net(&net_raw, name)?;
        let mut layers = Vec::new();
        for (index, raw) in iter.enumerate() {
            let kind = parse_layer(&raw, index, name)?;
            layers.push(Layer { index, raw, kind });
        }
        let cfg = Cfg {
            name: name.into(),
            net,
            net_raw,
            preamble,
            layers,
        };
        super::shapes::layer_shapes(&cfg, cfg.net.width, cfg.net.height)?;
        Ok(cfg)
    }

    /// The cfg text with `[net]` and every section verbatim, except `filters` of the layers in
    /// `filters` (layer index → new value). Pruning writes its cfgs with this.
    pub fn to_text_with_filters(
        &self,
        filters: &std::collections::HashMap<usize, usize>,
    ) -> String {
        let mut out = String::new();
        for l in &self.preamble {
            out.push_str(l);
            out.push('\n');
        }
        for l in &self.net_raw.lines {
            out.push_str(l);
            out.push('\n');
        }
        for layer in &self.layers {
            let new = filters.get(&layer.index);
            let filters_line = new.and_then(|_| layer.raw.get("filters").map(|e| e.line));
            for (i, l) in layer.raw.lines.iter().enumerate() {
                let line_no = layer.raw.line + i;
                match (new, filters_line) {
                    (Some(n), Some(fl)) if fl == line_no => out.push_str(&format!("filters={n}")),
                    _ => out.push_str(l),
                }
                out.push('\n');
            }
        }
        out
    }

    /// The cfg text exactly as parsed (modulo line endings).
    pub fn to_text(&self) -> String {
        self.to_text_with_filters(&Default::default())
    }

    /// Number of classes of the first `[yolo]` layer (0 if none).
    pub fn num_classes(&self) -> usize {
        self.layers
            .iter()
            .find_map(|l| match &l.kind {
                LayerKind::Yolo(y) => Some(y.classes),
                _ => None,
            })
            .unwrap_or(0)
    }
}

/// Strips a `#`/`;` comment and surrounding whitespace.
fn strip_comment(line: &str) -> &str {
    let end = line.find(['#', ';']).unwrap_or(line.len());
    line[..end].trim()
}

/// Splits text into the lines before the first header and the raw sections.
fn split_sections(text: &str, name: &str) -> Result<(Vec<String>, Vec<RawSection>), ModelError> {
    let mut preamble = Vec::new();
    let mut sections: Vec<RawSection> = Vec::new();
    for (i, raw_line) in text.lines().enumerate() {
        let line_no = i + 1;
        let raw_line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let content = strip_comment(raw_line);
        if let Some(header) = content.strip_prefix('[') {
            let Some(kind) = header.strip_suffix(']') else {
                return Err(ModelError::Syntax {
                    file: name.into(),
                    line: line_no,
                    text: raw_line.into(),
                });
            };
            sections.push(RawSection {
                kind: kind.trim().to_ascii_lowercase(),
                line: line_no,
                entries: Vec::new(),
                lines: vec![raw_line.into()],
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            if !content.is_empty() {
                return Err(ModelError::Syntax {
                    file: name.into(),
                    line: line_no,
                    text: format!("{raw_line} (key outside any [section])"),
                });
            }
            preamble.push(raw_line.into());
            continue;
        };
        section.lines.push(raw_line.into());
        if content.is_empty() {
            continue;
        }
        let Some((k, v)) = content.split_once('=') else {
            return Err(ModelError::Syntax {
                file: name.into(),
                line: line_no,
                text: raw_line.into(),
            });
        };
        section.entries.push(Entry {
            key: k.trim().to_string(),
            value: v.trim().to_string(),
            line: line_no,
        });
    }
    Ok((preamble, sections))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = "[net]\r\nwidth=64 # inline\r\nheight = 32\r\n; c\r\n  \r\nchannels=3\r\n[convolutional]\r\nbatch_normalize=1\r\nfilters=4 ; x\r\nsize=3\r\nstride=1\r\npad=1\r\nactivation=leaky\r\n";

    #[test]
    fn parses_crlf_inline_comments_and_blanks() {
        let cfg = Cfg::parse_str(TINY, "t.cfg").unwrap();
        assert_eq!(cfg.net.width, 64);
        assert_eq!(cfg.net.height, 32);
        assert_eq!(cfg.layers.len(), 1);
        match &cfg.layers[0].kind {
            LayerKind::Conv(c) => assert_eq!((c.filters, c.size, c.pad), (4, 3, 1)),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn rewrites_only_filters() {
        let cfg = Cfg::parse_str(TINY, "t.cfg").unwrap();
        let mut m = std::collections::HashMap::new();
        m.insert(0, 2);
        let text = cfg.to_text_with_filters(&m);
        assert!(text.contains("filters=2\n"));
        assert!(text.contains("width=64 # inline\n"));
        let again = Cfg::parse_str(&text, "t2").unwrap();
        assert!(matches!(&again.layers[0].kind, LayerKind::Conv(c) if c.filters == 2));
        assert_eq!(cfg.to_text(), TINY.replace("\r\n", "\n"));
    }

    #[test]
    fn garbage_line_is_an_error_with_line() {
        let err = Cfg::parse_str("[net]\nwidth=32\nheight=32\nwat\n", "g.cfg").unwrap_err();
        assert!(err.to_string().contains("g.cfg:4"), "{err}");
    }
}
