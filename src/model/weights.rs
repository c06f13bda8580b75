//! Darknet `.weights`: header + raw float arrays per layer, read with exact byte accounting and
//! written back byte-identically.

use super::shapes::{input_of, layer_shapes, Shape};
use super::{Cfg, LayerKind, ModelError, ShortcutWeights};
use std::path::Path;

/// The file header. `seen` is 8 bytes when `major*10+minor >= 2` (Darknet's rule), else 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightsHeader {
    pub major: i32,
    pub minor: i32,
    pub revision: i32,
    pub seen: u64,
}

impl WeightsHeader {
    /// Header Darknet ≥ 0.2 writes (20 bytes).
    pub const DEFAULT: WeightsHeader = WeightsHeader {
        major: 0,
        minor: 2,
        revision: 5,
        seen: 0,
    };

    /// Whether `seen` is stored as u64 (20-byte header) rather than u32 (16 bytes).
    pub fn seen_is_u64(&self) -> bool {
        self.major * 10 + self.minor >= 2
    }

    /// Header size in bytes.
    pub fn byte_len(&self) -> u64 {
        if self.seen_is_u64() {
            20
        } else {
            16
        }
    }
}

/// Raw parameters of one `[convolutional]`, in file order. With BN, `biases` are β.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvWeights {
    pub layer: usize,
    pub biases: Vec<f32>,
    /// `Some((γ, mean, var))` when the layer has `batch_normalize=1`.
    pub bn: Option<(Vec<f32>, Vec<f32>, Vec<f32>)>,
    /// OIHW, `[filters, in/groups, size, size]`.
    pub kernel: Vec<f32>,
    pub kernel_shape: [usize; 4],
}

/// Fusion weights of a weighted `[shortcut]` (index 0 = previous layer, then each `from`).
#[derive(Debug, Clone, PartialEq)]
pub struct ShortcutWeightsData {
    pub layer: usize,
    pub weights: Vec<f32>,
}

/// All parameters of a network, as stored in a `.weights` file.
#[derive(Debug, Clone, PartialEq)]
pub struct DarknetWeights {
    pub header: WeightsHeader,
    pub convs: Vec<ConvWeights>,
    pub shortcuts: Vec<ShortcutWeightsData>,
}

/// What the cfg says one weighted layer stores.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ParamSpec {
    Conv {
        layer: usize,
        n: usize,
        bn: bool,
        kernel: [usize; 4],
    },
    Shortcut {
        layer: usize,
        n: usize,
    },
}

impl ParamSpec {
    /// Number of f32 values in the file.
    pub fn floats(&self) -> usize {
        match *self {
            ParamSpec::Conv { n, bn, kernel, .. } => {
                n * if bn { 4 } else { 1 } + kernel.iter().product::<usize>()
            }
            ParamSpec::Shortcut { n, .. } => n,
        }
    }
}

/// The weighted layers of `cfg` in file order.
pub(crate) fn param_specs(cfg: &Cfg) -> Result<Vec<ParamSpec>, ModelError> {
    let shapes = layer_shapes(cfg, cfg.net.width, cfg.net.height)?;
    let input = Shape {
        c: cfg.net.channels,
        h: cfg.net.height,
        w: cfg.net.width,
    };
    let mut specs = Vec::new();
    for l in &cfg.layers {
        let inp = input_of(&shapes, input, l.index);
        match &l.kind {
            LayerKind::Conv(c) => specs.push(ParamSpec::Conv {
                layer: l.index,
                n: c.filters,
                bn: c.batch_normalize,
                kernel: [c.filters, inp.c / c.groups, c.size, c.size],
            }),
            LayerKind::Shortcut(s) => {
                let k = s.from.len() + 1;
                let n = match s.weights_type {
                    ShortcutWeights::None => 0,
                    ShortcutWeights::PerFeature => k,
                    ShortcutWeights::PerChannel => k * inp.c,
                };
                if n > 0 {
                    specs.push(ParamSpec::Shortcut { layer: l.index, n });
                }
            }
            _ => {}
        }
    }
    Ok(specs)
}

/// Total f32 parameters the cfg stores in a `.weights` file.
pub fn param_count(cfg: &Cfg) -> Result<usize, ModelError> {
    Ok(param_specs(cfg)?.iter().map(ParamSpec::floats).sum())
}

/// Size in bytes of a `.weights` file for `cfg` with the default 20-byte header.
pub fn expected_file_size(cfg: &Cfg) -> Result<u64, ModelError> {
    Ok(WeightsHeader::DEFAULT.byte_len() + 4 * param_count(cfg)? as u64)
}

fn take(bytes: &[u8], pos: &mut usize, n: usize) -> Vec<f32> {
    let out = bytes[*pos..*pos + 4 * n]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    *pos += 4 * n;
    out
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl DarknetWeights {
    /// Reads a `.weights` file; its size must be exactly what `cfg` needs.
    pub fn read(path: &Path, cfg: &Cfg) -> Result<DarknetWeights, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, cfg, path)
    }

    /// Parses `.weights` bytes (`path` is only for messages).
    pub fn from_bytes(bytes: &[u8], cfg: &Cfg, path: &Path) -> Result<DarknetWeights, ModelError> {
        let bad = |why: String| ModelError::WeightsHeader {
            path: path.to_path_buf(),
            why,
        };
        if bytes.len() < 12 {
            return Err(bad(format!(
                "file has {} bytes, a header needs at least 16",
                bytes.len()
            )));
        }
        let (major, minor, revision) = (i32_at(bytes, 0), i32_at(bytes, 4), i32_at(bytes, 8));
        if major > 1000 || minor > 1000 {
            return Err(bad(format!(
                "version {major}.{minor} marks transposed weights, which Kestrel does not read"
            )));
        }
        if major < 0 || minor < 0 {
            return Err(bad(format!("negative version {major}.{minor}")));
        }
        let mut header = WeightsHeader {
            major,
            minor,
            revision,
            seen: 0,
        };
        let hlen = header.byte_len() as usize;
        let specs = param_specs(cfg)?;
        let expected =
            header.byte_len() + 4 * specs.iter().map(ParamSpec::floats).sum::<usize>() as u64;
        let actual = bytes.len() as u64;
        if bytes.len() < hlen {
            return Err(ModelError::WeightsTruncated {
                path: path.to_path_buf(),
                layer: 0,
                kind: "header".into(),
                expected,
                actual,
            });
        }
        header.seen = if header.seen_is_u64() {
            u64::from_le_bytes(bytes[12..20].try_into().map_err(|_| bad("seen".into()))?)
        } else {
            u32::from_le_bytes(bytes[12..16].try_into().map_err(|_| bad("seen".into()))?) as u64
        };
        let mut pos = hlen;
        let mut out = DarknetWeights {
            header,
            convs: Vec::new(),
            shortcuts: Vec::new(),
        };
        for spec in specs {
            if pos + 4 * spec.floats() > bytes.len() {
                let (layer, kind) = match spec {
                    ParamSpec::Conv { layer, .. } => (layer, "convolutional"),
                    ParamSpec::Shortcut { layer, .. } => (layer, "shortcut"),
                };
                return Err(ModelError::WeightsTruncated {
                    path: path.to_path_buf(),
                    layer,
                    kind: kind.into(),
                    expected,
                    actual,
                });
            }
            match spec {
                ParamSpec::Conv {
                    layer,
                    n,
                    bn,
                    kernel,
                } => {
                    let biases = take(bytes, &mut pos, n);
                    let bn = bn.then(|| {
                        let g = take(bytes, &mut pos, n);
                        let m = take(bytes, &mut pos, n);
                        let v = take(bytes, &mut pos, n);
                        (g, m, v)
                    });
                    let k = take(bytes, &mut pos, kernel.iter().product());
                    out.convs.push(ConvWeights {
                        layer,
                        biases,
                        bn,
                        kernel: k,
                        kernel_shape: kernel,
                    });
                }
                ParamSpec::Shortcut { layer, n } => {
                    out.shortcuts.push(ShortcutWeightsData {
                        layer,
                        weights: take(bytes, &mut pos, n),
                    });
                }
            }
        }
        if pos != bytes.len() {
            return Err(ModelError::WeightsOversized {
                path: path.to_path_buf(),
                expected,
                actual,
            });
        }
        Ok(out)
    }

    /// The file bytes, in Darknet's layout.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let h = &self.header;
        for v in [h.major, h.minor, h.revision] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if h.seen_is_u64() {
            out.extend_from_slice(&h.seen.to_le_bytes());
        } else {
            out.extend_from_slice(&(h.seen as u32).to_le_bytes());
        }
        let put = |out: &mut Vec<u8>, v: &[f32]| {
            v.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
        };
        let (mut ci, mut si) = (0, 0);
        while ci < self.convs.len() || si < self.shortcuts.len() {
            let conv_next = match (self.convs.get(ci), self.shortcuts.get(si)) {
                (Some(c), Some(s)) => c.layer < s.layer,
                (Some(_), None) => true,
                _ => false,
            };
            if conv_next {
                let c = &self.convs[ci];
                put(&mut out, &c.biases);
                if let Some((g, m, v)) = &c.bn {
                    put(&mut out, g);
                    put(&mut out, m);
                    put(&mut out, v);
                }
                put(&mut out, &c.kernel);
                ci += 1;
            } else {
                put(&mut out, &self.shortcuts[si].weights);
                si += 1;
            }
        }
        out
    }

    /// Writes a `.weights` file Darknet, OpenCV and Kestrel can read.
    pub fn write(&self, path: &Path) -> Result<(), ModelError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Deterministic random weights for `cfg` (see `random.rs`).
    pub fn random(cfg: &Cfg, seed: u64) -> Result<DarknetWeights, ModelError> {
        super::random::random_weights(cfg, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_cfg() -> Cfg {
        Cfg::parse_str("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n[convolutional]\nfilters=2\nsize=1\nactivation=linear\n", "t").unwrap()
    }

    #[test]
    fn round_trip_is_byte_identical_and_sizes_exact() {
        let cfg = tiny_cfg();
        let w = DarknetWeights::random(&cfg, 7).unwrap();
        let bytes = w.to_bytes();
        assert_eq!(bytes.len() as u64, expected_file_size(&cfg).unwrap());
        let back = DarknetWeights::from_bytes(&bytes, &cfg, Path::new("x")).unwrap();
        assert_eq!(back, w);
        assert_eq!(back.to_bytes(), bytes);
        let e = DarknetWeights::from_bytes(&bytes[..bytes.len() - 4], &cfg, Path::new("x"))
            .unwrap_err();
        assert!(
            matches!(e, ModelError::WeightsTruncated { layer: 1, .. }),
            "{e}"
        );
        let mut big = bytes.clone();
        big.extend_from_slice(&[0; 4]);
        let e = DarknetWeights::from_bytes(&big, &cfg, Path::new("x")).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("expected {} bytes", bytes.len())),
            "{e}"
        );
    }

    #[test]
    fn header_version_rules() {
        let cfg = tiny_cfg();
        let mut w = DarknetWeights::random(&cfg, 1).unwrap();
        w.header = WeightsHeader {
            major: 0,
            minor: 1,
            revision: 0,
            seen: 12345,
        };
        let bytes = w.to_bytes();
        assert_eq!(
            bytes.len() as u64,
            16 + 4 * param_count(&cfg).unwrap() as u64
        );
        let back = DarknetWeights::from_bytes(&bytes, &cfg, Path::new("x")).unwrap();
        assert_eq!(back.header.seen, 12345);
        let mut t = bytes.clone();
        t[0..4].copy_from_slice(&1001i32.to_le_bytes());
        assert!(matches!(
            DarknetWeights::from_bytes(&t, &cfg, Path::new("x")),
            Err(ModelError::WeightsHeader { .. })
        ));
    }
}
