//! Darknet `.weights` for pruning: 16/20-byte header, then per conv β,γ,mean,var (or bias) and
//! the OIHW kernel as little-endian f32. Streamed, so peak memory is the parameters themselves.

use std::path::Path;

use super::net::{BatchNorm, ConvParams, Layer, Net};
use super::PruneError;

/// The header fields kept so a written file carries the same version and `seen`.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub major: i32,
    pub minor: i32,
    pub revision: i32,
    pub seen: u64,
}

/// Streams little-endian f32 values, naming the conv that runs past the end of the file.
struct FloatReader<'a> {
    inner: std::io::BufReader<std::fs::File>,
    path: &'a Path,
    buf: Vec<u8>,
    read: u64,
}

impl FloatReader<'_> {
    fn ints<const N: usize>(&mut self) -> Result<[u8; N], PruneError> {
        let mut b = [0u8; N];
        std::io::Read::read_exact(&mut self.inner, &mut b).map_err(|_| PruneError::Weights {
            path: self.path.to_path_buf(),
            msg: "shorter than the Darknet header".into(),
        })?;
        self.read += N as u64;
        Ok(b)
    }

    fn floats(&mut self, n: usize, layer: usize) -> Result<Vec<f32>, PruneError> {
        self.buf.resize(4 * n, 0);
        std::io::Read::read_exact(&mut self.inner, &mut self.buf).map_err(|_| {
            PruneError::Weights {
                path: self.path.to_path_buf(),
                msg: format!("ends inside conv layer {layer}: the weights do not match the cfg"),
            }
        })?;
        self.read += 4 * n as u64;
        Ok(self
            .buf
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

fn read_header(r: &mut FloatReader) -> Result<Header, PruneError> {
    let v = |b: [u8; 4]| i32::from_le_bytes(b);
    let (major, minor, revision) = (v(r.ints()?), v(r.ints()?), v(r.ints()?));
    if major > 1000 || minor > 1000 {
        return Err(PruneError::Weights {
            path: r.path.to_path_buf(),
            msg: format!("transposed weights (version {major}.{minor}) are not supported"),
        });
    }
    let seen = if major * 10 + minor >= 2 {
        u64::from_le_bytes(r.ints()?)
    } else {
        u32::from_le_bytes(r.ints()?) as u64
    };
    Ok(Header {
        major,
        minor,
        revision,
        seen,
    })
}

/// Reads the conv parameters of `layers` (widths known) from `path`; exact size required.
pub fn read(
    path: &Path,
    layers: &[Layer],
    widths: &[usize],
    in_ch: usize,
) -> Result<(Header, Vec<Option<ConvParams>>), PruneError> {
    let file = std::fs::File::open(path).map_err(|e| PruneError::io(path, e))?;
    let len = file.metadata().map_err(|e| PruneError::io(path, e))?.len();
    let mut r = FloatReader {
        inner: std::io::BufReader::with_capacity(1 << 20, file),
        path,
        buf: Vec::new(),
        read: 0,
    };
    let header = read_header(&mut r)?;
    let mut params = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let Layer::Conv(c) = l else {
            params.push(None);
            continue;
        };
        let inp = if i == 0 { in_ch } else { widths[i - 1] };
        let n = c.filters;
        let bias = r.floats(n, i)?;
        let bn = if c.batch_norm {
            Some(BatchNorm {
                gamma: r.floats(n, i)?,
                mean: r.floats(n, i)?,
                var: r.floats(n, i)?,
            })
        } else {
            None
        };
        let kernel = r.floats(n * inp * c.size * c.size, i)?;
        params.push(Some(ConvParams {
            out: n,
            inp,
            k: c.size,
            bias,
            bn,
            kernel,
        }));
    }
    if r.read != len {
        return Err(PruneError::Weights {
            path: path.to_path_buf(),
            msg: format!(
                "{} bytes left after the last conv: the weights do not match the cfg",
                len - r.read
            ),
        });
    }
    Ok((header, params))
}

/// Writes `net`'s parameters with a 20-byte Darknet 0.2 header (version kept if newer).
pub fn write(path: &Path, net: &Net, header: Header) -> Result<(), PruneError> {
    let file = std::fs::File::create(path).map_err(|e| PruneError::io(path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    write_all(&mut w, net, header).map_err(|e| PruneError::io(path, e))
}

fn write_all(w: &mut impl std::io::Write, net: &Net, header: Header) -> std::io::Result<()> {
    let (major, minor) = if header.major * 10 + header.minor >= 2 {
        (header.major, header.minor)
    } else {
        (0, 2)
    };
    for v in [major, minor, header.revision] {
        w.write_all(&v.to_le_bytes())?;
    }
    w.write_all(&header.seen.to_le_bytes())?;
    let mut put = |v: &[f32]| v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()));
    for p in net.params.iter().flatten() {
        put(&p.bias)?;
        if let Some(bn) = &p.bn {
            put(&bn.gamma)?;
            put(&bn.mean)?;
            put(&bn.var)?;
        }
        put(&p.kernel)?;
    }
    w.flush()
}

/// Loads cfg + weights into a [`Net`].
pub fn load_net(cfg_path: &Path, weights_path: &Path) -> Result<(Net, Header), PruneError> {
    let text = std::fs::read_to_string(cfg_path).map_err(|e| PruneError::io(cfg_path, e))?;
    let cfg = super::cfg_text::CfgText::parse(&text, &cfg_path.display().to_string())?;
    let input = cfg.input()?;
    let layers = cfg.layers()?;
    let widths = Net::compute_widths(&layers, input.2)?;
    let (header, params) = read(weights_path, &layers, &widths, input.2)?;
    Ok((
        Net {
            cfg,
            layers,
            widths,
            params,
            input,
        },
        header,
    ))
}
