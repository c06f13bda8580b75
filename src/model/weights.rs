//! Darknet `.weights` files: header + raw little-endian f32 arrays, in cfg order.
//!
//! Kept as raw arrays (not folded) so a file can be written back byte-identically; pruning
//! slices these arrays and writes them.

use super::cfg::Cfg;
use super::layers::LayerSpec;
use super::ModelError;
use std::path::Path;

/// The parameters of one `[convolutional]` layer, exactly as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvWeights {
    /// Layer index in the cfg.
    pub layer: usize,
    /// BN β (Darknet "biases") or the conv bias when there is no BN.
    pub biases: Vec<f32>,
    /// BN γ, running mean and variance, when the layer has `batch_normalize=1`.
    pub bn: Option<BatchNorm>,
    /// Kernel, `[out][in/groups][kh][kw]` row-major (OIHW).
    pub kernel: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    pub scales: Vec<f32>,
    pub mean: Vec<f32>,
    pub variance: Vec<f32>,
}

/// All weights of a model plus the header, for lossless round trips.
#[derive(Debug, Clone, PartialEq)]
pub struct DarknetWeights {
    pub major: i32,
    pub minor: i32,
    pub revision: i32,
    pub seen: u64,
    /// Darknet ≥ 0.2 writes `seen` as u64 (20-byte header), older files as i32 (16 bytes).
    pub seen_is_u64: bool,
    pub convs: Vec<ConvWeights>,
    /// Fusion weights of weighted `[shortcut]` layers: (layer index, values).
    pub shortcuts: Vec<(usize, Vec<f32>)>,
}

/// Header size by Darknet's version rule.
fn seen_is_u64(major: i32, minor: i32) -> bool {
    major * 10 + minor >= 2 && major < 1000 && minor < 1000
}

/// Floats each weighted layer stores, with the layer index, in file order.
fn layout(cfg: &Cfg) -> Result<Vec<(usize, usize)>, ModelError> {
    let shapes = cfg.shapes(cfg.net.width, cfg.net.height)?;
    Ok(cfg
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                i,
                l.weight_count(cfg.input_shape(&shapes, i, cfg.net.width, cfg.net.height)),
            )
        })
        .filter(|&(_, n)| n > 0)
        .collect())
}

/// Bytes a `.weights` file for this cfg must have (20-byte header).
pub fn expected_file_size(cfg: &Cfg) -> Result<u64, ModelError> {
    let floats: usize = layout(cfg)?.iter().map(|&(_, n)| n).sum();
    Ok(20 + 4 * floats as u64)
}

/// Total parameter count (floats in the file).
pub fn parameter_count(cfg: &Cfg) -> Result<usize, ModelError> {
    Ok(layout(cfg)?.iter().map(|&(_, n)| n).sum())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn floats(&mut self, n: usize) -> Option<Vec<f32>> {
        let end = self.pos.checked_add(n.checked_mul(4)?)?;
        let slice = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(
            slice
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
}

impl DarknetWeights {
    /// Reads a `.weights` file and checks its size against the cfg to the byte.
    ///
    /// # Errors
    /// Unreadable file, transposed (`[connected]`-era) files, truncated or oversized files —
    /// the message names the first layer that runs past the end, and expected vs actual bytes.
    pub fn read(path: &Path, cfg: &Cfg) -> Result<DarknetWeights, ModelError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ModelError::Io {
            path: name.clone(),
            source: e,
        })?;
        DarknetWeights::from_bytes(&bytes, cfg, &name)
    }

    /// Parses the bytes of a `.weights` file; `name` is used in messages.
    ///
    /// # Errors
    /// As [`DarknetWeights::read`].
    pub fn from_bytes(bytes: &[u8], cfg: &Cfg, name: &str) -> Result<DarknetWeights, ModelError> {
        if bytes.len() < 16 {
            return Err(ModelError::weights(
                name,
                format!(
                    "{} bytes: too short for a Darknet header (16 or 20 bytes)",
                    bytes.len()
                ),
            ));
        }
        let int =
            |o: usize| i32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let (major, minor, revision) = (int(0), int(4), int(8));
        if major > 1000 || minor > 1000 {
            return Err(ModelError::weights(
                name,
                format!("version {major}.{minor}: transposed weights are not supported"),
            ));
        }
        let wide = seen_is_u64(major, minor);
        let header = if wide { 20 } else { 16 };
        if bytes.len() < header {
            return Err(ModelError::weights(
                name,
                format!("{} bytes: header needs {header}", bytes.len()),
            ));
        }
        let seen = if wide {
            u64::from_le_bytes(bytes[12..20].try_into().unwrap_or([0; 8]))
        } else {
            int(12) as u32 as u64
        };
        let plan = layout(cfg)?;
        let expected = header as u64 + 4 * plan.iter().map(|&(_, n)| n as u64).sum::<u64>();
        let mut r = Reader { bytes, pos: header };
        let mut convs = Vec::new();
        let mut shortcuts = Vec::new();
        for &(i, count) in &plan {
            let start = r.pos;
            let truncated = || {
                ModelError::weights(
                    name,
                    format!(
                        "truncated: layer {i} [{}] (cfg line {}) needs {count} floats past byte {}; expected {expected} bytes for {}, file has {}",
                        cfg.sections[i].name, cfg.sections[i].line, start, cfg.name, bytes.len()
                    ),
                )
            };
            match &cfg.layers[i] {
                LayerSpec::Conv(c) => {
                    let n = c.filters;
                    let biases = r.floats(n).ok_or_else(truncated)?;
                    let bn = if c.batch_normalize {
                        Some(BatchNorm {
                            scales: r.floats(n).ok_or_else(truncated)?,
                            mean: r.floats(n).ok_or_else(truncated)?,
                            variance: r.floats(n).ok_or_else(truncated)?,
                        })
                    } else {
                        None
                    };
                    let k = count - if c.batch_normalize { 4 * n } else { n };
                    let kernel = r.floats(k).ok_or_else(truncated)?;
                    convs.push(ConvWeights {
                        layer: i,
                        biases,
                        bn,
                        kernel,
                    });
                }
                _ => shortcuts.push((i, r.floats(count).ok_or_else(truncated)?)),
            }
        }
        if r.pos != bytes.len() {
            return Err(ModelError::weights(
                name,
                format!(
                    "oversized: expected {expected} bytes for {}, file has {} ({} extra)",
                    cfg.name,
                    bytes.len(),
                    bytes.len() - r.pos
                ),
            ));
        }
        Ok(DarknetWeights {
            major,
            minor,
            revision,
            seen,
            seen_is_u64: wide,
            convs,
            shortcuts,
        })
    }

    /// Serialises to the `.weights` byte layout (inverse of [`DarknetWeights::from_bytes`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let floats: usize = self
            .convs
            .iter()
            .map(|c| {
                c.biases.len() + c.kernel.len() + c.bn.as_ref().map_or(0, |b| 3 * b.scales.len())
            })
            .sum::<usize>()
            + self.shortcuts.iter().map(|s| s.1.len()).sum::<usize>();
        let mut out = Vec::with_capacity(20 + 4 * floats);
        for v in [self.major, self.minor, self.revision] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if self.seen_is_u64 {
            out.extend_from_slice(&self.seen.to_le_bytes());
        } else {
            out.extend_from_slice(&(self.seen as u32).to_le_bytes());
        }
        let mut put = |v: &[f32]| {
            v.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
        };
        // Convs and weighted shortcuts interleave in layer order in the file.
        let (mut ci, mut si) = (0, 0);
        while ci < self.convs.len() || si < self.shortcuts.len() {
            let conv_next = match (self.convs.get(ci), self.shortcuts.get(si)) {
                (Some(c), Some(s)) => c.layer < s.0,
                (Some(_), None) => true,
                _ => false,
            };
            if conv_next {
                let c = &self.convs[ci];
                put(&c.biases);
                if let Some(bn) = &c.bn {
                    put(&bn.scales);
                    put(&bn.mean);
                    put(&bn.variance);
                }
                put(&c.kernel);
                ci += 1;
            } else {
                put(&self.shortcuts[si].1);
                si += 1;
            }
        }
        out
    }

    /// Writes a `.weights` file.
    ///
    /// # Errors
    /// I/O errors, naming the path.
    pub fn write(&self, path: &Path) -> Result<(), ModelError> {
        std::fs::write(path, self.to_bytes()).map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            source: e,
        })
    }

    /// The weights of conv layer `layer`, if it is one.
    pub fn conv(&self, layer: usize) -> Option<&ConvWeights> {
        self.convs.iter().find(|c| c.layer == layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = "[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n[convolutional]\nfilters=2\nsize=1\nactivation=linear\n";

    #[test]
    fn round_trip_is_byte_identical_and_sizes_are_exact() {
        let cfg = Cfg::parse_str(TINY, "tiny.cfg").unwrap();
        let w = crate::model::random::random_weights(&cfg, 7);
        let bytes = w.to_bytes();
        assert_eq!(bytes.len() as u64, expected_file_size(&cfg).unwrap());
        let back = DarknetWeights::from_bytes(&bytes, &cfg, "x").unwrap();
        assert_eq!(back.to_bytes(), bytes);
        let err = DarknetWeights::from_bytes(&bytes[..bytes.len() - 4], &cfg, "t.weights")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("truncated") && err.contains("layer 1"),
            "{err}"
        );
        let mut big = bytes.clone();
        big.extend_from_slice(&[0; 8]);
        let err = DarknetWeights::from_bytes(&big, &cfg, "t.weights")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("oversized") && err.contains("8 extra"),
            "{err}"
        );
    }

    #[test]
    fn old_header_has_32_bit_seen() {
        let cfg = Cfg::parse_str(TINY, "tiny.cfg").unwrap();
        let mut w = crate::model::random::random_weights(&cfg, 1);
        w.major = 0;
        w.minor = 1;
        w.seen_is_u64 = false;
        w.seen = 1234;
        let bytes = w.to_bytes();
        assert_eq!(bytes.len() as u64, expected_file_size(&cfg).unwrap() - 4);
        assert_eq!(DarknetWeights::from_bytes(&bytes, &cfg, "x").unwrap(), w);
    }
}
