//! The cfg as text: sections with their lines, so a pruned cfg is the original file with only
//! the `filters=` values of thinned convs changed (comments, `[net]` and key order untouched).

use super::net::{ConvSpec, Layer};
use super::PruneError;

/// One `[section]`: its name, the line it starts on (1-based) and its `key=value` pairs with lines.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub keys: Vec<(String, String, usize)>,
}

/// The original text plus its parsed sections (`sections[0]` is `[net]`).
#[derive(Debug, Clone)]
pub struct CfgText {
    pub source: String,
    pub lines: Vec<String>,
    pub sections: Vec<Section>,
}

impl CfgText {
    pub fn parse(text: &str, source: &str) -> Result<Self, PruneError> {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut sections: Vec<Section> = Vec::new();
        for (n, raw) in lines.iter().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                sections.push(Section {
                    name: name.trim().to_owned(),
                    line: n + 1,
                    keys: Vec::new(),
                });
                continue;
            }
            let err = |msg: &str| PruneError::Cfg {
                path: source.to_owned(),
                line: n + 1,
                msg: msg.to_owned(),
            };
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| err("expected key=value"))?;
            let sec = sections
                .last_mut()
                .ok_or_else(|| err("key before the first [section]"))?;
            sec.keys
                .push((k.trim().to_owned(), v.trim().to_owned(), n + 1));
        }
        if sections.first().map(|s| s.name.as_str()) != Some("net") {
            return Err(PruneError::Cfg {
                path: source.to_owned(),
                line: 1,
                msg: "the first section must be [net]".into(),
            });
        }
        Ok(Self {
            source: source.to_owned(),
            lines,
            sections,
        })
    }

    fn get(&self, s: &Section, key: &str) -> Option<(String, usize)> {
        s.keys
            .iter()
            .rev()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, l)| (v.clone(), *l))
    }

    fn num(&self, s: &Section, key: &str, default: Option<usize>) -> Result<usize, PruneError> {
        match self.get(s, key) {
            Some((v, line)) => v.parse().map_err(|_| PruneError::Cfg {
                path: self.source.clone(),
                line,
                msg: format!("{key}={v} is not a non-negative integer"),
            }),
            None => default.ok_or_else(|| PruneError::Cfg {
                path: self.source.clone(),
                line: s.line,
                msg: format!("[{}] needs {key}=", s.name),
            }),
        }
    }

    /// Network input (width, height, channels) from `[net]`.
    pub fn input(&self) -> Result<(usize, usize, usize), PruneError> {
        let net = &self.sections[0];
        Ok((
            self.num(net, "width", None)?,
            self.num(net, "height", None)?,
            self.num(net, "channels", Some(3))?,
        ))
    }

    /// The layers after `[net]`, with relative indices resolved to absolute ones.
    pub fn layers(&self) -> Result<Vec<Layer>, PruneError> {
        let mut out = Vec::new();
        for (i, s) in self.sections[1..].iter().enumerate() {
            out.push(self.layer(i, s)?);
        }
        Ok(out)
    }

    fn resolve(&self, i: usize, v: &str, line: usize) -> Result<usize, PruneError> {
        let err = || PruneError::Cfg {
            path: self.source.clone(),
            line,
            msg: format!("layer index {v} out of range for layer {i}"),
        };
        let n: i64 = v.trim().parse().map_err(|_| err())?;
        let abs = if n < 0 { i as i64 + n } else { n };
        if abs < 0 || abs >= i as i64 {
            return Err(err());
        }
        Ok(abs as usize)
    }

    fn layer(&self, i: usize, s: &Section) -> Result<Layer, PruneError> {
        Ok(match s.name.as_str() {
            "convolutional" => {
                let size = self.num(s, "size", Some(1))?;
                let pad = if self.num(s, "pad", Some(0))? == 1 {
                    size / 2
                } else {
                    self.num(s, "padding", Some(0))?
                };
                let act = self.get(s, "activation").map(|(v, _)| v);
                Layer::Conv(ConvSpec {
                    filters: self.num(s, "filters", Some(1))?,
                    size,
                    stride: self.num(s, "stride", Some(1))?,
                    pad,
                    batch_norm: self.num(s, "batch_normalize", Some(0))? == 1,
                    leaky: act.as_deref() == Some("leaky"),
                })
            }
            "shortcut" => {
                let (v, line) = self.get(s, "from").ok_or_else(|| self.missing(s, "from"))?;
                Layer::Shortcut {
                    from: self.resolve(i, &v, line)?,
                }
            }
            "route" => {
                let (v, line) = self
                    .get(s, "layers")
                    .ok_or_else(|| self.missing(s, "layers"))?;
                let layers = v
                    .split(',')
                    .map(|p| self.resolve(i, p, line))
                    .collect::<Result<_, _>>()?;
                Layer::Route { layers }
            }
            "upsample" => Layer::Upsample {
                stride: self.num(s, "stride", Some(2))?,
            },
            "maxpool" => Layer::Maxpool {
                size: self.num(s, "size", Some(2))?,
                stride: self.num(s, "stride", Some(2))?,
            },
            "yolo" => Layer::Yolo,
            other => {
                return Err(PruneError::Cfg {
                    path: self.source.clone(),
                    line: s.line,
                    msg: format!("layer {i}: [{other}] is not supported by pruning"),
                })
            }
        })
    }

    fn missing(&self, s: &Section, key: &str) -> PruneError {
        PruneError::Cfg {
            path: self.source.clone(),
            line: s.line,
            msg: format!("[{}] needs {key}=", s.name),
        }
    }

    /// The cfg text with layer `i`'s `filters=` set to `new_filters[i]` where given.
    pub fn with_filters(&self, new_filters: &[Option<usize>]) -> String {
        let mut lines = self.lines.clone();
        for (i, f) in new_filters.iter().enumerate() {
            let (Some(f), Some(sec)) = (f, self.sections.get(i + 1)) else {
                continue;
            };
            match self.get(sec, "filters") {
                Some((_, line)) => {
                    let raw = &lines[line - 1];
                    let indent: String = raw.chars().take_while(|c| c.is_whitespace()).collect();
                    lines[line - 1] = format!("{indent}filters={f}");
                }
                None => lines[sec.line - 1] = format!("{}\nfilters={f}", lines[sec.line - 1]),
            }
        }
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[net]\n# keep me\nwidth=64\nheight = 32\n\n[convolutional]\nbatch_normalize=1\nfilters = 8\nsize=3\npad=1\nactivation=leaky\n\n[route]\nlayers = -1\n[shortcut]\nfrom=-2\n";

    #[test]
    fn parses_and_rewrites_only_filters() {
        let c = CfgText::parse(TEXT, "t.cfg").unwrap();
        assert_eq!(c.input().unwrap(), (64, 32, 3));
        let l = c.layers().unwrap();
        assert_eq!(l[1], Layer::Route { layers: vec![0] });
        assert_eq!(l[2], Layer::Shortcut { from: 0 });
        let out = c.with_filters(&[Some(5), None, None]);
        assert_eq!(out, TEXT.replace("filters = 8", "filters=5"));
    }

    #[test]
    fn bad_index_names_the_line() {
        let e = CfgText::parse("[net]\nwidth=1\n[route]\nlayers=-3\n", "x.cfg")
            .unwrap()
            .layers()
            .unwrap_err();
        assert!(e.to_string().starts_with("x.cfg:4:"), "{e}");
    }
}
